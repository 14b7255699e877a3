"""Time minGRU's parallel scan against its step loop, forward + backward, and print the ratio.

One ``MinGRUCell`` (input = hidden = H) over a random ``(T, B, H)`` sequence; loss = ``ys.sum()``,
backward to the input and every parameter. The two contenders share the cell and the input:
``scan`` (``cell.scan``, the chunked log-space scan the layers use without lengths) and ``loop``
(the unroller's step path: the input projection hoisted, then one ``step`` per time step). They
are checked to agree first (float32, 1e-4), then alternate one iteration at a time, the one that
goes first swapping every round, each iteration timed on its own; the figures are medians over
the rounds, and the ratio is the median of the per-round ratios (so slow machine drift cancels).

Run::

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/min_rnn_scan.py [--T 4096 --repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnnkit.cells.min_rnn import MinGRUCell


def _loop(cell: MinGRUCell, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    xp = cell.project_input(x)  # (T, B, 2H), as the unroller hoists it
    ys = []
    for xt in xp.unbind(0):  # sliced once, as the unroller does (xp[t] would be quadratic)
        y, h = cell.step(xt, h)
        ys.append(y)
    return torch.stack(ys)  # (T, B, H)


def _timed(run, cell, x, h0, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(cell, x, h0).sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=4096, help="time steps")
    parser.add_argument("--B", type=int, default=8, help="batch size")
    parser.add_argument("--H", type=int, default=64, help="hidden size (= input size)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    cell = MinGRUCell(args.H, args.H).to(device)
    x = torch.randn(args.T, args.B, args.H, device=device, requires_grad=True)
    h0 = torch.zeros(args.B, args.H, device=device)
    contenders = {"scan": lambda c, x, h: c.scan(x, h)[0], "loop": _loop}

    with torch.no_grad():
        gap = (contenders["scan"](cell, x, h0) - _loop(cell, x, h0)).abs().max().item()
    print(f"minGRU T={args.T} B={args.B} H={args.H} on {device}: max |scan - loop| = {gap:.2e}")
    if gap > 1e-4:
        raise SystemExit("scan and loop disagree")
    for run in contenders.values():  # warm-up
        _timed(run, cell, x, h0, device)

    times: dict[str, list[float]] = {name: [] for name in contenders}
    ratios = []
    for r in range(args.repeats):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            times[name].append(_timed(contenders[name], cell, x, h0, device))
        ratios.append(times["loop"][-1] / times["scan"][-1])
    scan_ms = 1e3 * statistics.median(times["scan"])
    loop_ms = 1e3 * statistics.median(times["loop"])
    print(f"fwd+bwd  scan {scan_ms:9.1f} ms   loop {loop_ms:9.1f} ms   "
          f"loop/scan {statistics.median(ratios):6.1f}x  (median of {args.repeats})")  # fmt: skip


if __name__ == "__main__":
    main()
