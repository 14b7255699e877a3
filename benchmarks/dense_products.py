"""The matrix products under rnnkit's recurrent loops: ATen's ``mm``, oneDNN, rnnkit's kernel.

Three tables, each contender interleaved with the others (``benchmarks/timing.py``), medians of
per-call times with their min-max, ratios to ATen's ``mm`` from the same run:

1. One step's product ``h W^T`` (B rows, W of shape (4H, H)), as the C++ time loops make it:
   ``mm`` (ATen, re-packing W at every call), ``onednn`` (``mkldnn::_linear_pointwise`` on the
   plain weight) and ``onednn-packed`` (on the weight laid out once for oneDNN, as
   ``dense.packed_for_steps`` does on CPUs without AVX-512), on all threads; then ``half-rows``
   is ``onednn-packed`` on B/2 rows on one thread, the share of one thread when the loop splits
   the batch among two (``row_blocks`` in the .cpp).
   The ``loop-*`` and ``half-*`` rows make the same product from C++ as the loops do
   (``rnnkit_kernels::step_product``, 100 calls in one, no Python between them): on oneDNN's
   layout (its result copied into the loop's buffer) and on rnnkit's own AVX-512 kernel
   (``panels``: W laid out by ``pack_panels``, written straight into the buffer), on all
   threads, then on B/2 rows on one thread. Needs the kernels; the panel rows need AVX-512.
2. The whole-sequence input side ``x W^T`` (T*B rows), ``F.linear`` against ``dense.linear``,
   and ``onednn-chunks``: ``dense.linear`` on about 4 MB of output at a time (``dense.chunks``),
   as the forward-only loops make their input side where they do not make it at each step.

3. A whole-sequence buffer, made and written once per call, as the time loops need them at
   every call: ``torch.empty`` (fresh 4 kB pages from 32 MB up, one fault each on first write)
   against ``empty_huge`` (advised for 2 MB pages, ``common.h``) and ``sequence_buffer`` (the
   loops' own: ``empty_huge``'s memory kept after use and handed out again). Needs the kernels.

Run: ``PYTHONPATH=src python benchmarks/dense_products.py [--threads 2] [--repeats 200]``;
other step shapes with ``--steps 1x256,8x512 --step-only``.
"""

from __future__ import annotations

import argparse
import functools
import statistics

import torch
import torch.nn.functional as F
from timing import interleaved, spread

from rnnkit.cells import kernels
from rnnkit.cells.kernels import dense

STEP_SHAPES = ((32, 256), (16, 256), (64, 128), (32, 128))  # (B, H)
INPUT_SHAPES = ((4096, 256), (16384, 128))  # (T*B, H)


def _batch(fn, n: int):
    """n calls as one timed unit: one call is microseconds, below the timer's resolution."""

    def run() -> None:
        for _ in range(n):
            fn()

    return run


def _one_thread(fn):
    def run() -> None:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            fn()
        finally:
            torch.set_num_threads(before)

    return run


def _print(title: str, samples: dict[str, list[float]], scale: float, base: str = "mm") -> None:
    """One row per contender; ``scale`` turns a sample (ms per timed unit) into us per call;
    ratios divide by the median of ``base``."""
    reference = statistics.median(samples[base])
    for name, times in samples.items():
        times = [t * scale for t in times]
        median = statistics.median(times)
        ratio = median / (reference * scale)
        print(f"{title:<20} {name:<16} {median:>10.1f} {spread(times):>16} {ratio:>8.2f}")


def step_products(B: int, H: int, repeats: int) -> None:
    torch.manual_seed(0)
    linear = torch.ops.mkldnn._linear_pointwise
    h, w = torch.randn(B, H), torch.randn(4 * H, H)
    w_t = w.t()
    blocks = max(1, min(torch.get_num_threads(), B // 8))  # as dense.packed_for_steps chooses
    packed = torch.ops.mkldnn._reorder_linear_weight(w, B // blocks)
    halves = B >= 2  # the half-* rows need a row in each half
    half = h[: B // 2]
    half_packed = torch.ops.mkldnn._reorder_linear_weight(w, B // 2) if halves else packed
    calls = 100  # per timed unit
    runs = {
        "mm": _batch(lambda: torch.mm(h, w_t), calls),
        "onednn": _batch(lambda: linear(h, w, None, "none", [], ""), calls),
        "onednn-packed": _batch(lambda: linear(h, packed, None, "none", [], ""), calls),
    }
    if halves:
        runs["half-rows"] = _one_thread(
            _batch(lambda: linear(half, half_packed, None, "none", [], ""), calls)
        )
    ops = kernels.load()
    if ops is not None:
        out, out_half = torch.empty(B, 4 * H), torch.empty(B // 2, 4 * H)
        layouts = {"onednn": (packed, half_packed), "panels": (ops.pack_panels(w),) * 2}
        for name, (whole, halved) in layouts.items():
            if name == "panels" and whole.dim() != 3:
                continue  # no AVX-512: no panels
            make = functools.partial(ops.step_product, repeats=calls)
            runs[f"loop-{name}"] = functools.partial(make, out, h, w_t, whole, None)
            if halves:
                runs[f"half-{name}"] = _one_thread(
                    functools.partial(make, out_half, half, w_t, halved, None)
                )
    _print(f"step B{B} H{H}", interleaved(runs, repeats), 1000 / calls)


def input_products(rows: int, H: int, repeats: int) -> None:
    torch.manual_seed(0)
    x, w = torch.randn(rows, H), torch.randn(4 * H, H)
    step = dense.chunk_steps(4 * H)  # rows of one chunk

    def chunked() -> None:
        for s in range(0, rows, step):
            dense.linear(x[s : s + step], w)

    runs = {"mm": lambda: F.linear(x, w), "onednn": lambda: dense.linear(x, w)}
    runs["onednn-chunks"] = chunked
    _print(f"input {rows}x{H}", interleaved(runs, repeats), 1000)


BUFFER_SHAPES = ((128, 32, 1024), (256, 64, 512))  # (T, B, 4H): 16 MB and 32 MB of float32


def fresh_buffers(shape: tuple[int, int, int], repeats: int) -> None:
    ops = kernels.load()
    if ops is None:
        print(f"buffer {shape}: the kernels are not built; skipped")
        return
    runs = {
        "torch.empty": lambda: torch.empty(shape).fill_(1.0),
        "empty_huge": lambda: ops.empty_huge(list(shape), torch.float32).fill_(1.0),
        "sequence_buffer": lambda: ops.sequence_buffer(list(shape), torch.float32).fill_(1.0),
    }
    T, B, G = shape
    _print(f"buffer T{T} B{B} {G}", interleaved(runs, repeats), 1000, base="torch.empty")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (30)")
    parser.add_argument(
        "--steps",
        default=",".join(f"{B}x{H}" for B, H in STEP_SHAPES),
        help="the step products' shapes, BxH comma-separated (%(default)s); "
        "--steps '' leaves table 1 out",
    )
    parser.add_argument("--step-only", action="store_true", help="table 1 only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {args.threads} threads, {args.repeats} rounds")
    print(f"{'shape':<20} {'contender':<16} {'median':>10} {'min-max':>16} {'/ mm':>8}")
    for shape in filter(None, args.steps.split(",")):
        B, H = (int(v) for v in shape.lower().split("x"))
        step_products(B, H, args.repeats)
    if args.step_only:
        return
    for rows, H in INPUT_SHAPES:
        input_products(rows, H, args.repeats)
    for shape in BUFFER_SHAPES:
        fresh_buffers(shape, args.repeats)
    print("median and min-max in microseconds per call; '/ mm' divides medians of the same run")
    print("(the buffer rows divide by torch.empty's)")


if __name__ == "__main__":
    main()
