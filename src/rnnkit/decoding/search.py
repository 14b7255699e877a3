"""Step-by-step decoding for any autoregressive model: greedy, sampled, and beam search.

A model exposes one decoding step as a function ``step(tokens, state) -> (logits, state, extra)``
over a batch of rows (every architecture's ``step`` method is one): ``tokens`` ``(N,)`` are the
previous tokens, ``logits`` ``(N, V)`` score the next one, and ``extra`` ``(N, ...)`` is anything
to keep per step (a seq2seq model's attention weights) or None. ``select(state, index)`` returns
the state of rows ``index``: beam search uses it to expand a batch into beams and to follow the
surviving ones.

Beam search keeps ``width`` hypotheses per item. At each step every alive hypothesis is extended
by every token; the ``2 * width`` best extensions are read in order: an ``<eos>`` among the first
``width`` finishes a hypothesis, the rest refill the beam. An item is done once ``width``
hypotheses have finished (or at ``max_length``, where the alive ones finish as they are). The
finished ones are ranked by their log-probability divided by ``length ** length_penalty``
(0: no normalisation; 1: the mean log-probability per token), which offsets the sum's bias
towards short outputs. With ``width=1`` this is exactly greedy decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rnnkit.decoding.sampling import SamplingConfig, pick_next

StepFn = Callable[[Tensor, object], tuple[Tensor, object, Tensor | None]]
SelectFn = Callable[[object, Tensor], object]


@dataclass
class Hypothesis:
    """One decoded sequence."""

    tokens: list[int]
    """The generated ids, ending with ``<eos>`` when the hypothesis finished."""
    log_prob: float
    """The sum of the tokens' log-probabilities."""
    score: float
    """``log_prob / len(tokens) ** length_penalty``: what the beam ranks by."""
    extras: Tensor | None = field(default=None, repr=False)
    """The step function's ``extra`` at every step, stacked ``(len(tokens), ...)``."""


def decode_steps(
    step: StepFn,
    state: object,
    batch_size: int,
    *,
    bos_id: int,
    eos_id: int,
    max_length: int,
    sampling: SamplingConfig | None = None,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Decode a batch token by token, greedily (the default) or by sampling.

    Returns the ids ``(B, T)`` (``<eos>`` included; rows that finished early are padded with
    ``<eos>``), the lengths ``(B,)`` counting the ``<eos>``, the stacked extras ``(B, T, ...)``
    and each output's log-probability ``(B,)`` (up to and including its ``<eos>``).
    """
    sampling = sampling or SamplingConfig(argmax=True)
    generator = None
    if not sampling.argmax:
        generator = torch.Generator(device=device).manual_seed(sampling.seed)
    tokens = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    lengths = torch.full((batch_size,), max_length, dtype=torch.long, device=device)
    log_prob = torch.zeros(batch_size, device=device)
    out: list[Tensor] = []
    extras: list[Tensor] = []
    for t in range(max_length):
        logits, state, extra = step(tokens, state)
        tokens = pick_next(logits, sampling, generator)
        chosen = torch.log_softmax(logits.float(), -1).gather(-1, tokens[:, None]).squeeze(-1)
        log_prob += chosen.masked_fill(finished, 0.0)
        tokens = tokens.masked_fill(finished, eos_id)
        out.append(tokens)
        if extra is not None:
            extras.append(extra)
        ends = (tokens == eos_id) & ~finished
        lengths = torch.where(ends, torch.full_like(lengths, t + 1), lengths)
        finished |= ends
        if bool(finished.all()):
            break
    stacked = torch.stack(extras, 1) if extras else None
    return torch.stack(out, 1), lengths, stacked, log_prob


def beam_search(
    step: StepFn,
    select: SelectFn,
    state: object,
    batch_size: int,
    *,
    bos_id: int,
    eos_id: int,
    width: int = 5,
    max_length: int = 100,
    length_penalty: float = 1.0,
    device: torch.device | str = "cpu",
) -> list[list[Hypothesis]]:
    """Beam search over a batch (see the module docstring).

    Returns, for each item, its finished hypotheses, best first (at most ``width``).
    """
    if width < 1:
        raise ValueError(f"--beam must be >= 1, got {width}")
    if max_length < 1:
        raise ValueError(f"--max-length must be >= 1, got {max_length}")
    B, K = batch_size, width
    rows = torch.arange(B, device=device).repeat_interleave(K)  # item of each of the B*K rows
    state = select(state, rows)
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis per item at the start, not K copies of it
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)
    extras: Tensor | None = None
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B

    def score_of(log_prob: float, length: int) -> float:
        return log_prob / (length**length_penalty)

    for t in range(max_length):
        logits, state, extra = step(tokens, state)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        V = log_probs.size(-1)
        if extra is not None:
            extras = (
                extra.unsqueeze(1) if extras is None else torch.cat([extras, extra[:, None]], 1)
            )
        candidates = (scores.reshape(B * K, 1) + log_probs).reshape(B, K * V)
        top_scores, top_index = candidates.topk(min(2 * K, K * V), dim=1)
        top_scores_l, top_index_l = top_scores.tolist(), top_index.tolist()
        new_rows = torch.arange(B * K, device=device).tolist()
        new_tokens = [eos_id] * (B * K)
        new_scores = [float("-inf")] * (B * K)
        for b in range(B):
            if done[b]:
                continue
            filled = 0
            for j, (s, flat) in enumerate(zip(top_scores_l[b], top_index_l[b])):
                if s == float("-inf"):
                    break
                row, token = b * K + flat // V, flat % V
                if token == eos_id:
                    if j < K:
                        seq = [*history[row].tolist(), eos_id]
                        ext = extras[row] if extras is not None else None
                        finished[b].append(Hypothesis(seq, s, score_of(s, len(seq)), ext))
                    continue
                slot = b * K + filled
                new_rows[slot], new_tokens[slot], new_scores[slot] = row, token, s
                filled += 1
                if filled == K:
                    break
            if len(finished[b]) >= K or filled == 0:
                done[b] = True
        if all(done):
            break
        index = torch.tensor(new_rows, device=device)
        tokens = torch.tensor(new_tokens, device=device)
        history = torch.cat([history[index], tokens[:, None]], 1)
        if extras is not None:
            extras = extras[index]
        scores = torch.tensor(new_scores, device=device).reshape(B, K)
        if t < max_length - 1:
            state = select(state, index)
    # items cut off by max_length: their alive hypotheses finish unended
    for b in range(B):
        if done[b]:
            continue
        for k in range(K):
            s = float(scores[b, k])
            if s == float("-inf"):
                continue
            row = b * K + k
            seq = history[row].tolist()
            ext = extras[row] if extras is not None else None
            finished[b].append(Hypothesis(seq, s, score_of(s, len(seq)), ext))
    return [sorted(hyps, key=lambda h: -h.score)[:K] for hyps in finished]
