"""Decoding a conditional model: ``generate`` for a ``OneToMany``, ``decode`` for a ``Seq2Seq``.

Both read the model through its two pure pieces, ``start(...)`` (the state before the first
token) and ``step(tokens, state)``, and run the searches of ``rnnkit.decoding.search`` on them:
greedy (the default), sampled (a ``SamplingConfig``) or beam search (``beam > 1``). Nothing here
reads the model's layers, so any cell the model was built with decodes the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.architectures.one_to_many import OneToMany, OneToManyState
from rnnkit.architectures.seq2seq import DecoderState, Seq2Seq
from rnnkit.decoding.sampling import SamplingConfig
from rnnkit.decoding.search import SelectFn, beam_search, decode_steps


@dataclass
class Decoded:
    """A decoded batch: one output per item."""

    tokens: list[list[int]]
    """The ids of each output, without ``<bos>``, and without ``<eos>``."""
    attention: list[Tensor]
    """Per item, the attention weights ``(T_out, S)`` of each output step (``<eos>`` included)
    over its source steps (``S`` = that item's source length)."""
    scores: list[float]
    """The log-probability of each output (length-normalised for beam search)."""


@torch.no_grad()
def generate(
    model: OneToMany,
    condition: Tensor,
    *,
    sampling: SamplingConfig | None = None,
    beam: int = 1,
    max_length: int = 50,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """One token sequence per input of a ``OneToMany`` (without ``<bos>``/``<eos>``).

    Args:
        model: the generator.
        condition: class ids ``(B,)`` or feature vectors ``(B, F)``.
        sampling: temperature, top-k, top-p and seed to draw a sequence (``argmax=True``, or
            None: greedy).
        beam: beam width; above 1, beam search finds a likely sequence instead.
        max_length: the most tokens per output.
        length_penalty: beam scores are log-probabilities / length ** this.

    Example::

        >>> model = OneToMany(30, num_conditions=4, hidden_size=32)
        >>> words = generate(model, torch.tensor([1, 2]), sampling=SamplingConfig(top_k=5))
    """
    tokens, _, _ = _run(
        model,
        lambda: model.start(condition),
        OneToManyState.index_select,
        condition.size(0),
        condition.device,
        sampling=sampling or SamplingConfig(argmax=True),
        beam=beam,
        max_length=max_length,
        length_penalty=length_penalty,
    )
    return tokens


@torch.no_grad()
def decode(
    model: Seq2Seq,
    source: Tensor,
    source_lengths: Tensor,
    *,
    beam: int = 1,
    max_length: int | None = None,
    length_penalty: float = 1.0,
    sampling: SamplingConfig | None = None,
) -> Decoded:
    """Decode a batch of a ``Seq2Seq``: greedy (``beam=1``, the default), beam search, or sampling.

    Args:
        model: the encoder-decoder.
        source, source_lengths: the padded source ids ``(B, S)`` and their lengths ``(B,)``.
        beam: beam width; 1 is greedy decoding.
        max_length: the most output tokens (default ``2 * S + 10``).
        length_penalty: beam scores are log-probabilities / length ** this.
        sampling: sample instead of searching (only with ``beam=1``).

    Example::

        >>> model = Seq2Seq(30, 40, hidden_size=32, embedding_size=16)
        >>> out = decode(model, torch.randint(4, 30, (2, 7)), torch.tensor([7, 5]), beam=3)
        >>> out.tokens, out.attention[0].shape  # (T_out, 7)
    """
    tokens, extras, scores = _run(
        model,
        lambda: model.start(source, source_lengths),
        DecoderState.index_select,
        source.size(0),
        source.device,
        sampling=sampling,
        beam=beam,
        max_length=max_length or 2 * source.size(1) + 10,
        length_penalty=length_penalty,
    )
    attention = [w[:, :n].cpu() for w, n in zip(extras, source_lengths.tolist())]
    return Decoded(tokens, attention, scores)


def _run(
    model: OneToMany | Seq2Seq,
    start: Callable[[], object],
    select: SelectFn,
    batch_size: int,
    device: torch.device,
    *,
    sampling: SamplingConfig | None,
    beam: int,
    max_length: int,
    length_penalty: float,
) -> tuple[list[list[int]], list[Tensor], list[float]]:
    """Greedy/sampled or beam decoding of ``model`` in eval mode; per item the tokens (no
    ``<eos>``), the stacked ``extra`` of each step (``<eos>`` included) and the score."""
    if beam < 1:
        raise ValueError(f"--beam must be >= 1, got {beam}")
    if beam > 1 and sampling is not None and not sampling.argmax:
        raise ValueError("sampling and beam search do not mix: give one of them")
    eos = model.eos_id
    was_training = model.training
    model.eval()  # no dropout while decoding; the mode is put back below
    try:
        state = start()
        if beam == 1:
            ids, lengths, extras, log_probs = decode_steps(
                model.step,
                state,
                batch_size,
                bos_id=model.bos_id,
                eos_id=eos,
                max_length=max_length,
                sampling=sampling,
                device=device,
            )
            ends = lengths.tolist()
            tokens = [[t for t in ids[b, :n].tolist() if t != eos] for b, n in enumerate(ends)]
            kept = [extras[b, :n] for b, n in enumerate(ends)] if extras is not None else []
            return tokens, kept, log_probs.tolist()
        best = [
            hyps[0]
            for hyps in beam_search(
                model.step,
                select,
                state,
                batch_size,
                bos_id=model.bos_id,
                eos_id=eos,
                width=beam,
                max_length=max_length,
                length_penalty=length_penalty,
                device=device,
            )
        ]
        tokens = [[t for t in h.tokens if t != eos] for h in best]
        kept = [h.extras for h in best if h.extras is not None]
        return tokens, kept, [h.score for h in best]
    finally:
        model.train(was_training)
