"""Language-model throughput: rnnkit's trainer and sampler against minimal torch.nn loops.

Two measurements, each taken against its reference in the same run:

1. Training tokens/s. rnnkit's ``Trainer`` running the ``lm`` task, against a minimal
   hand-written loop with the same model (embedding -> torch.nn.LSTM -> linear), the same batch
   shape, truncated BPTT with the state carried, AdamW and gradient clipping. A ratio near 1
   means the trainer adds no overhead. Both time only the training loop (no set-up, no
   evaluation), on the same text.
2. Sampling tokens/s at batch 1, the way ``rnnkit sample`` does it (``Stepper`` plus
   ``pick_next``), against stepping ``torch.nn.LSTM`` eagerly, one module call per token, with
   the same weights. Neither builds an autograd graph.

Run: ``python benchmarks/lm.py [--hidden-size 256] [--num-layers 2] [--steps 60] [--json F]``.
The text is the running Python's standard library (no download), so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.datasets import load_corpus
from rnnkit.decoding import SamplingConfig, Stepper, pick_next
from rnnkit.tasks.lm.task import LanguageModelTask, LMDataConfig, LMModelConfig, build_lm
from rnnkit.training import TrainConfig, Trainer


def corpus(chars: int) -> str:
    return load_corpus("python-stdlib")[:chars]


def trainer_tokens_per_s(task: LanguageModelTask, steps: int, warmup: int, lr: float) -> float:
    """Tokens/s of rnnkit's trainer over ``steps`` steps, after ``warmup`` untimed steps."""
    marks = {}

    def mark(trainer, record):
        if record["step"] in (warmup, warmup + steps):
            marks[record["step"]] = (time.perf_counter(), record["tokens"])

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            out=f"{tmp}/run",
            max_steps=warmup + steps + 1,
            lr=lr,
            log_every=1,
            eval_every=10**9,
            checkpoint_every=10**9,
            eval_max_tokens=1,
            progress=False,
        )
        Trainer(task, cfg, (mark,)).run()
    (t0, n0), (t1, n1) = marks[warmup], marks[warmup + steps]
    return (n1 - n0) / (t1 - t0)


class HandLM(nn.Module):
    def __init__(self, vocab: int, emb: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embedding(x), state)
        return self.head(out), state


def hand_tokens_per_s(
    task: LanguageModelTask, cfg: LMModelConfig, steps: int, warmup: int, lr: float
) -> float:
    """The minimal loop a person would write with torch.nn, on the same windows."""
    torch.manual_seed(0)
    model = HandLM(len(task.vocab), cfg.embedding_size, cfg.hidden_size, cfg.num_layers)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    state, start, tokens = None, 0.0, 0
    for step in range(warmup + steps):
        if step == warmup:
            start, tokens = time.perf_counter(), 0
        w = task.batcher.window(step)
        if w.starts_pass:
            state = None
        logits, state = model(w.x, state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.flatten(0, 1), w.y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        tokens += w.y.numel()
    return tokens / (time.perf_counter() - start)


def sampling_ms_per_token(model_cfg: LMModelConfig, vocab: int, tokens: int) -> tuple[float, float]:
    """(rnnkit, eager torch.nn) milliseconds per sampled token at batch 1, same weights."""
    torch.manual_seed(0)
    ours = build_lm(vocab, model_cfg).eval()
    hand = HandLM(vocab, model_cfg.embedding_size, model_cfg.hidden_size, model_cfg.num_layers)
    hand.load_state_dict(ours.state_dict())
    hand.eval()
    sampling = SamplingConfig(temperature=0.8)
    g = torch.Generator().manual_seed(0)

    def rnnkit_loop(n):
        stepper = Stepper(ours)
        state, tok = stepper.zero_state(1), torch.tensor([1])
        for _ in range(n):
            logits, state = stepper.step(tok, state)
            tok = pick_next(logits, sampling, g)

    def eager_loop(n):
        state, tok = None, torch.tensor([[1]])
        for _ in range(n):
            logits, state = hand(tok, state)
            tok = pick_next(logits[:, -1], sampling, g).unsqueeze(0)

    times = {"rnnkit": [], "eager": []}
    with torch.inference_mode():
        rnnkit_loop(50)
        eager_loop(50)
        for rep in range(6):
            for name, fn in (("rnnkit", rnnkit_loop), ("eager", eager_loop))[
                :: 1 if rep % 2 else -1
            ]:
                t = time.perf_counter()
                fn(tokens)
                times[name].append((time.perf_counter() - t) / tokens * 1e3)
    return statistics.median(times["rnnkit"]), statistics.median(times["eager"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--num-layers", type=int, default=2)
    ap.add_argument("--embedding-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=128)
    ap.add_argument("--steps", type=int, default=60, help="timed training steps per run")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each loop")
    ap.add_argument("--sample-tokens", type=int, default=1000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    model_cfg = LMModelConfig(
        hidden_size=args.hidden_size, num_layers=args.num_layers, embedding_size=args.embedding_size
    )
    data_cfg = LMDataConfig(data="python-stdlib", bptt=args.bptt)
    text = corpus(3_000_000)
    task = LanguageModelTask(model_cfg, data_cfg, text, batch_size=args.batch_size)
    print(
        f"model: LSTM {args.num_layers}x{args.hidden_size}, vocab {len(task.vocab)}, "
        f"batch {args.batch_size} x bptt {args.bptt}"
    )

    ours, hand = [], []
    for rep in range(args.repeats):
        order = [("rnnkit", ours), ("hand", hand)][:: 1 if rep % 2 == 0 else -1]
        for name, out in order:
            if name == "rnnkit":
                out.append(trainer_tokens_per_s(task, args.steps, args.warmup, 2e-3))
            else:
                out.append(hand_tokens_per_s(task, model_cfg, args.steps, args.warmup, 2e-3))
    t_ours, t_hand = statistics.median(ours), statistics.median(hand)
    s_ours, s_eager = sampling_ms_per_token(model_cfg, len(task.vocab), args.sample_tokens)

    print("\ntraining (median of interleaved runs)")
    print(f"  rnnkit trainer      {t_ours:>10,.0f} tokens/s")
    print(f"  hand torch.nn loop  {t_hand:>10,.0f} tokens/s")
    print(f"  ratio rnnkit/hand   {t_ours / t_hand:>10.3f}   (1.0 = no trainer overhead)")
    print("\nsampling at batch 1 (median)")
    print(f"  rnnkit sampler      {s_ours:>10.3f} ms/token  {1e3 / s_ours:>8,.0f} tokens/s")
    print(f"  eager torch.nn.LSTM {s_eager:>10.3f} ms/token  {1e3 / s_eager:>8,.0f} tokens/s")
    print(f"  speed-up            {s_eager / s_ours:>10.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "train_tokens_per_s": {"rnnkit": ours, "hand": hand},
                    "sample_ms_per_token": {"rnnkit": s_ours, "eager": s_eager},
                    "args": vars(args),
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
