"""Time the min-RNN parallel scan against the same cell's step loop, forward + backward.

One cell (input = hidden = H) over a random ``(T, B, H)`` sequence; loss = ``ys.sum()``, backward
to the input and every parameter. The two contenders share the cell and the input: ``scan``
(``cell.scan``, the Blelloch scan the layers use without lengths) and ``loop`` (the unroller's
step path: the input projection hoisted, sliced once with ``unbind``, then one ``step`` per time
step). They are checked to agree first (float32, 1e-4), then alternate one iteration at a time,
each iteration timed on its own; the figures are medians over the rounds, and the ratio is the
median of the per-round ratios (so slow machine drift cancels). ``benchmarks/cells.py`` prints
the same figure at the end of its tables.

Run::

    PYTHONPATH=src python benchmarks/min_rnn_scan.py [--T 4096 --repeats 7 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from timing import interleaved

from rnnkit.cells.min_rnn import MinGRUCell, MinLSTMCell

CELLS = {"mingru": MinGRUCell, "minlstm": MinLSTMCell}


def step_loop(cell, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The unroller's step path: projection hoisted, sliced once with unbind (no x[t])."""
    xp = cell.project_input(x)  # (T, B, G)
    ys = []
    for xt in xp.unbind(0):
        y, h = cell.step(xt, h)
        ys.append(y)
    return torch.stack(ys)  # (T, B, H)


def scan_vs_loop(
    cell_name: str = "mingru",
    *,
    T: int = 4096,
    B: int = 8,
    H: int = 64,
    repeats: int = 7,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Median fwd+bwd ms of the scan and the loop, their ratio, and the largest output gap."""
    device = device or torch.device("cpu")
    torch.manual_seed(0)
    cell = CELLS[cell_name](H, H).to(device)
    x = torch.randn(T, B, H, device=device, requires_grad=True)
    h0 = torch.zeros(B, H, device=device)
    with torch.no_grad():
        gap = (cell.scan(x, h0)[0] - step_loop(cell, x, h0)).abs().max().item()
    if gap > 1e-4:
        raise SystemExit(f"{cell_name}: scan and loop disagree by {gap:.2e}")

    def run(fn):
        def once() -> None:
            cell.zero_grad(set_to_none=True)
            x.grad = None
            fn().sum().backward()

        return once

    samples = interleaved(
        {"scan": run(lambda: cell.scan(x, h0)[0]), "loop": run(lambda: step_loop(cell, x, h0))},
        repeats,
        device=device,
    )
    ratios = [lo / sc for sc, lo in zip(samples["scan"], samples["loop"], strict=True)]
    return {
        "scan_ms": statistics.median(samples["scan"]),
        "loop_ms": statistics.median(samples["loop"]),
        "ratio": statistics.median(ratios),
        "gap": gap,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=list(CELLS), default="mingru")
    parser.add_argument("--T", type=int, default=4096, help="time steps")
    parser.add_argument("--B", type=int, default=8, help="batch size")
    parser.add_argument("--H", type=int, default=64, help="hidden size (= input size)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    r = scan_vs_loop(args.cell, T=args.T, B=args.B, H=args.H, repeats=args.repeats, device=device)
    print(f"{args.cell} T={args.T} B={args.B} H={args.H} on {device}, {args.threads} threads: "
          f"max |scan - loop| = {r['gap']:.2e}")  # fmt: skip
    print(f"fwd+bwd  scan {r['scan_ms']:9.1f} ms   loop {r['loop_ms']:9.1f} ms   "
          f"loop/scan {r['ratio']:6.1f}x  (median of {args.repeats})")  # fmt: skip


if __name__ == "__main__":
    main()
