"""Time custom cells and the reference loop against torch.nn.LSTM, and how they scale with T.

Table 1, at each configuration (input size = hidden size, time-major input)

    L2 H256 B32 T128    2 layers, hidden 256, batch 32, 128 steps
    L1 H128 B64 T256    1 layer,  hidden 128, batch 64, 256 steps

times five contenders in two modes, ``fwd+bwd`` (loss = ``output.sum()``, backward to every
parameter and the input) and ``fwd`` (under ``torch.no_grad()``):

    nn.LSTM     torch.nn.LSTM, the reference every ratio divides by
    native      rnnkit.LSTM (torch's fused kernels underneath)
    reference   rnnkit.LSTM(backend="reference"), the readable Python time loop
    ln-lstm     rnnkit.Recurrent(rnnkit.LayerNormLSTMCell)
    user-gru    rnnkit.Recurrent(UserGRUCell): a plain GRU cell written as the Recurrent docs
                show, a module mapping ``(x_t, h) -> (y_t, h)`` with no ``project_input``

Table 2, T-scaling: time per step (fwd+bwd) of ``Recurrent(UserGRUCell)`` and of the reference
path at T = 64, 256, 1024 (B 16, H 64), and the ratio of per-step times T=1024 / T=64. A loop
whose per-step cost does not depend on T gives ~1.0; indexing ``x[t]`` of a tensor that needs a
gradient gives a ratio well above that, since each step's backward then builds a zero tensor the
size of the whole sequence.

Fairness on a small, noisy machine: every contender is warmed up first; then each round runs
every contender once, in an order that rotates every round, and times each iteration on its own,
so a stall spoils one sample, not a mean. The tables print the median over rounds and the spread
(min-max) in ms; ratios divide medians measured in the same run. Wall-clock figures on shared CPU
cores are noisy: read ratios, not absolute times, and rerun before believing a small difference.

Run::

    python benchmarks/cells.py               # full run (~1.5 min on 2 CPU cores)
    python benchmarks/cells.py --quick       # smoke run: 3 rounds, ~30 s
    python benchmarks/cells.py --threads 1 --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import rnnkit

MODES = ("fwd+bwd", "fwd")
SCALING_STEPS = (64, 256, 1024)
SCALING_BATCH, SCALING_HIDDEN = 16, 64


@dataclass(frozen=True)
class Shape:
    """One configuration of table 1; the input size equals ``hidden_size``."""

    num_layers: int
    hidden_size: int
    batch_size: int
    steps: int

    def __str__(self) -> str:
        return f"L{self.num_layers} H{self.hidden_size} B{self.batch_size} T{self.steps}"


SHAPES = (
    Shape(num_layers=2, hidden_size=256, batch_size=32, steps=128),
    Shape(num_layers=1, hidden_size=128, batch_size=64, steps=256),
)


class UserGRUCell(nn.Module):
    """A GRU step as a user would write it for ``rnnkit.Recurrent``: ``(x_t, h) -> (h, h)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, 3 * hidden_size)
        self.hh = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:  # x (B, I), h (B, H)
        xr, xz, xn = self.ih(x).chunk(3, -1)
        hr, hz, hn = self.hh(h).chunk(3, -1)
        r = torch.sigmoid(xr + hr)  # reset gate
        z = torch.sigmoid(xz + hz)  # update gate
        n = torch.tanh(xn + r * hn)  # candidate state
        h = (1 - z) * n + z * h  # (B, H)
        return h, h


def contenders(shape: Shape) -> dict[str, nn.Module]:
    """The five layers of table 1; the three LSTMs share torch's weights."""
    torch.manual_seed(0)
    H, L = shape.hidden_size, shape.num_layers
    base = nn.LSTM(H, H, num_layers=L)
    native = rnnkit.LSTM(H, H, num_layers=L)
    native.load_state_dict(base.state_dict(), strict=True)
    reference = rnnkit.LSTM(H, H, num_layers=L, backend="reference")
    reference.load_state_dict(base.state_dict(), strict=True)
    return {
        "nn.LSTM": base,
        "native": native,
        "reference": reference,
        "ln-lstm": rnnkit.Recurrent(rnnkit.LayerNormLSTMCell, H, H, num_layers=L),
        "user-gru": rnnkit.Recurrent(UserGRUCell, H, H, num_layers=L),
    }


def iteration(model: nn.Module, x: Tensor, mode: str) -> Callable[[], None]:
    """One timed iteration: forward+backward (gradients reset first) or forward only."""

    def train() -> None:
        model.zero_grad(set_to_none=True)
        x.grad = None
        output, _ = model(x)  # (T, B, H)
        output.sum().backward()

    def infer() -> None:
        with torch.no_grad():
            model(x)

    return train if mode == "fwd+bwd" else infer


def interleaved(runs: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Per-iteration times in ms, contenders rotated every round so drift hits all alike."""
    for run in runs.values():  # warm-up: allocator, thread pool, first-call dispatch
        run()
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name]()
            samples[name].append(1e3 * (time.perf_counter() - start))
    return samples


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def table_contenders(repeats: int) -> None:
    print(
        f"{'config':<18} {'mode':<8} {'contender':<10} {'median ms':>10} {'min-max ms':>16}"
        f" {'/ nn.LSTM':>10}"
    )
    for shape in SHAPES:
        models = contenders(shape)
        x = torch.randn(shape.steps, shape.batch_size, shape.hidden_size)
        for mode in MODES:
            xin = x.clone().requires_grad_(mode == "fwd+bwd")
            samples = interleaved({n: iteration(m, xin, mode) for n, m in models.items()}, repeats)
            base = statistics.median(samples["nn.LSTM"])
            for name, times in samples.items():
                median = statistics.median(times)
                print(
                    f"{shape!s:<18} {mode:<8} {name:<10} {median:>10.2f} {spread(times):>16}"
                    f" {median / base:>10.2f}"
                )


def table_scaling(repeats: int) -> None:
    print(
        f"\nT-scaling, fwd+bwd, B{SCALING_BATCH} H{SCALING_HIDDEN}: ms per step (median, min-max)"
    )
    torch.manual_seed(0)
    H = SCALING_HIDDEN
    models = {
        "user-gru": rnnkit.Recurrent(UserGRUCell, H, H),
        "reference": rnnkit.LSTM(H, H, backend="reference"),
    }
    runs, inputs = {}, {}
    for T in SCALING_STEPS:
        inputs[T] = torch.randn(T, SCALING_BATCH, H, requires_grad=True)
        for name, model in models.items():
            runs[(name, T)] = iteration(model, inputs[T], "fwd+bwd")
    samples = interleaved(runs, repeats)
    header = "".join(f" {f'T={T}':>20}" for T in SCALING_STEPS)
    print(f"{'contender':<10}{header} {'T=1024/T=64':>12} {'(of minima)':>12}")
    for name in models:
        per_step = {T: [t / T for t in samples[(name, T)]] for T in SCALING_STEPS}
        cells = "".join(
            f" {statistics.median(v):>7.3f} ({spread_fine(v)})".rjust(21) for v in per_step.values()
        )
        ratio = statistics.median(per_step[SCALING_STEPS[-1]]) / statistics.median(
            per_step[SCALING_STEPS[0]]
        )
        # The ratio of minima is the least disturbed by other processes on shared cores.
        low = min(per_step[SCALING_STEPS[-1]]) / min(per_step[SCALING_STEPS[0]])
        print(f"{name:<10}{cells} {ratio:>12.2f} {low:>12.2f}")


def spread_fine(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (15; quick: 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 rounds")
    parser.add_argument("--scaling-only", action="store_true", help="only the T-scaling table")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    repeats = args.repeats or (3 if args.quick else 15)
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {args.threads} threads, {repeats} rounds")
    if not args.scaling_only:
        table_contenders(repeats)
    table_scaling(repeats)


if __name__ == "__main__":
    main()
