"""Time rnnkit's LSTM, GRU and RNN against torch.nn in the same run, and print the ratios.

For each cell (LSTM, GRU, tanh RNN) and each configuration

    L2 H256 B32 T128    2 layers, hidden 256, batch 32, 128 steps
    L2 H512 B32 T128    2 layers, hidden 512, batch 32, 128 steps
    L1 H128 B64 T256    1 layer,  hidden 128, batch 64, 256 steps
    L1 H1024 B16 T64    1 layer,  hidden 1024, batch 16, 64 steps

the model is a 65-symbol ``nn.Embedding`` (embedding size = hidden size) followed by the
recurrent layer, fed random token ids; the embedding lookup is timed too, identically for every
contender. Three contenders share the same weights (the rnnkit layers load the torch layer's
``state_dict``): ``torch.nn``, rnnkit with ``backend="native"`` (which calls torch's own fused
kernels, so its ratio to torch should be ~1.00) and rnnkit with ``backend="reference"`` (the
readable Python time loop). Two modes are timed: ``fwd+bwd`` (loss = ``output.sum()``, backward
to every parameter, embedding included) and ``fwd`` (under ``torch.no_grad()``).

Before timing, each configuration checks once that both rnnkit paths match torch.nn within 1e-4
(outputs and final states; gradients relative to their largest entry), in IEEE float32: on CUDA
cuDNN's default TF32 alone puts the paths ~5e-4 apart, and the timings keep torch's defaults. A
mismatch is printed loudly and makes the exit code 1.

How the timing stays fair on a small, noisy machine: every contender runs warm-up iterations
first (the parity check's forward+backward counts as one more); torch and rnnkit-native then
alternate one iteration at a time, the one that goes first swapping every round (AB BA AB ...),
and each iteration is timed on its own (``torch.cuda.synchronize()`` around it on CUDA), so a
stall spoils one sample, not a mean. The ms columns are medians of those per-iteration times.
``native/torch`` is the median of the per-round ratios (a round's two iterations run back to
back, so slow drift of the machine cancels); ``ref/native`` divides the medians. The reference
path is far slower and gets fewer repeats (``--reference-repeats``). With 30 rounds the median
ratio is good to about +-2% on a 2-core VM (an A/A run, torch against a copy of itself, gave
1.00-1.01). Another busy process ruins CPU timings (two OpenMP threads on two shared cores:
oneDNN's LSTM slows many times over), so every row records the share of the CPUs that other
processes took, and a warning names the rows where it passed 10%.

Exit code 1 when any fwd+bwd native/torch ratio exceeds 1.05 (each offender is printed) or a
parity check fails, else 0.

Run::

    python benchmarks/layers.py                  # full run, ~12 min on 2 CPU cores
    python benchmarks/layers.py --quick          # smoke run, ~1.5 min: see --help
    python benchmarks/layers.py --device cuda --json bench.json
    python benchmarks/layers.py --cells LSTM --repeats 60   # look closer at one cell
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from timing import Shape, quartiles, race, solo
from torch import Tensor, nn

import rnnkit

VOCAB = 65
RATIO_LIMIT = 1.05
TOLERANCE = 1e-4
BUSY_LIMIT = 0.1  # share of the CPUs taken by other processes above which a warning is printed
CELLS = ("LSTM", "GRU", "RNN")
MODES = ("fwd+bwd", "fwd")


SHAPES = (
    Shape(num_layers=2, hidden_size=256, batch_size=32, steps=128),
    Shape(num_layers=2, hidden_size=512, batch_size=32, steps=128),
    Shape(num_layers=1, hidden_size=128, batch_size=64, steps=256),
    Shape(num_layers=1, hidden_size=1024, batch_size=16, steps=64),
)


@dataclass(kw_only=True)
class Row:
    """One line of the table: a cell, a configuration and a mode, all three contenders."""

    cell: str
    config: str
    mode: str
    torch_ms: float
    native_ms: float
    native_ratio: float
    """Median over rounds of native/torch, each round's pair timed back to back."""
    native_ratio_iqr: tuple[float, float]
    """First and third quartile of those per-round ratios: how noisy the machine was."""
    reference_ms: float | None
    reference_ratio: float | None
    repeats: int
    reference_repeats: int
    torch_samples_ms: list[float]
    native_samples_ms: list[float]
    reference_samples_ms: list[float]
    other_load: float | None = None
    """Share of the CPUs other processes took while this row was measured (see OtherLoad)."""


class Embedded(nn.Module):
    """Token ids through an embedding, then a recurrent layer: (B, T) -> (B, T, H)."""

    def __init__(self, embed: nn.Embedding, layer: nn.Module) -> None:
        super().__init__()
        self.embed, self.layer = embed, layer

    def forward(self, tokens: Tensor):
        return self.layer(self.embed(tokens))  # output (B, T, H), final state


def build(cell: str, shape: Shape, device: torch.device) -> dict[str, Embedded]:
    """The three contenders of one cell and configuration, with identical weights."""
    torch.manual_seed(0)
    H, L = shape.hidden_size, shape.num_layers
    kwargs: dict = {"num_layers": L, "batch_first": True}
    if cell == "RNN":
        kwargs["nonlinearity"] = "tanh"
    embed = nn.Embedding(VOCAB, H)
    base = getattr(nn, cell)(H, H, **kwargs)
    models = {"torch": Embedded(embed, base)}
    for backend in ("native", "reference"):
        layer = getattr(rnnkit, cell)(H, H, backend=backend, **kwargs)
        layer.load_state_dict(base.state_dict(), strict=True)
        # Each contender owns its embedding, so no gradient is shared between them.
        models[backend] = Embedded(copy.deepcopy(embed), layer)
    return {name: model.to(device) for name, model in models.items()}


def training_step(model: Embedded, tokens: Tensor) -> Callable[[], None]:
    """One forward+backward iteration, gradients reset first."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        output, _ = model(tokens)  # (B, T, H)
        output.sum().backward()

    return run


def inference_step(model: Embedded, tokens: Tensor) -> Callable[[], None]:
    """One forward iteration without autograd."""

    def run() -> None:
        with torch.no_grad():
            model(tokens)

    return run


# -- parity ------------------------------------------------------------------------------------
def max_error(ours: Tensor, ref: Tensor, *, relative: bool = False) -> float:
    error = (ours - ref).abs().max().item()
    return error / max(1.0, ref.abs().max().item()) if relative else error


@contextmanager
def ieee_float32() -> Iterator[None]:
    """cuDNN runs float32 RNNs in TF32 by default (~5e-4 off IEEE); parity is checked in IEEE."""
    rnn = getattr(torch.backends.cudnn, "rnn", None)
    if rnn is not None and hasattr(rnn, "fp32_precision"):
        old, rnn.fp32_precision = rnn.fp32_precision, "ieee"
        try:
            yield
        finally:
            rnn.fp32_precision = old
    else:  # torch before the fp32_precision settings
        old, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = old


def check_parity(models: dict[str, Embedded], tokens: Tensor) -> dict[str, float]:
    """Largest difference of each rnnkit path from torch: outputs, final states, gradients."""
    results = {}
    for model in models.values():
        model.zero_grad(set_to_none=True)
    outputs = {}
    for name, model in models.items():
        with ieee_float32():
            output, final = model(tokens)  # (B, T, H), h_n or (h_n, c_n) each (L, B, H)
            output.sum().backward()
        outputs[name] = (output.detach(), [s.detach() for s in _parts(final)])
    ref_out, ref_final = outputs["torch"]
    ref_params = dict(models["torch"].named_parameters())
    for name in ("native", "reference"):
        out, final = outputs[name]
        forward = max(
            [max_error(out, ref_out)]
            + [max_error(a, b) for a, b in zip(final, ref_final, strict=True)]
        )
        grads = max(
            max_error(p.grad, ref_params[k].grad, relative=True)
            for k, p in models[name].named_parameters()
        )
        results[name] = max(forward, grads)
    return results


def _parts(state) -> list[Tensor]:
    return [state] if isinstance(state, Tensor) else list(state)


# -- timing: benchmarks/timing.py ------------------------------------------------------------
def measure(cell, shape, mode, models, tokens, args, device) -> Row:
    step = training_step if mode == "fwd+bwd" else inference_step
    run = {name: step(model, tokens) for name, model in models.items()}
    gc.collect()
    gc.disable()  # as timeit does: a collection must not land inside one contender's sample
    try:
        torch_ms, native_ms = race(
            run["torch"], run["native"], rounds=args.repeats, warmup=args.warmup, device=device
        )
        reference_ms = solo(
            run["reference"], rounds=args.reference_repeats, warmup=args.warmup, device=device
        )
    finally:
        gc.enable()
    ratios = [n / t for t, n in zip(torch_ms, native_ms, strict=True)]
    native = statistics.median(native_ms)
    reference = statistics.median(reference_ms) if reference_ms else None
    return Row(
        cell=cell,
        config=str(shape),
        mode=mode,
        torch_ms=statistics.median(torch_ms),
        native_ms=native,
        native_ratio=statistics.median(ratios),
        native_ratio_iqr=quartiles(ratios),
        reference_ms=reference,
        reference_ratio=reference / native if reference is not None else None,
        repeats=args.repeats,
        reference_repeats=args.reference_repeats,
        torch_samples_ms=torch_ms,
        native_samples_ms=native_ms,
        reference_samples_ms=reference_ms,
    )


# -- report ------------------------------------------------------------------------------------
class OtherLoad:
    """Share of the machine's CPU time that other processes took since this object was made.

    All CPUs' busy time from ``/proc/stat`` less this process's own CPU time, over wall time
    times CPUs. On a 2-core machine another busy process slows oneDNN's LSTM many times over, so
    every row records it. ``None`` where ``/proc/stat`` is missing (not Linux).
    """

    def __init__(self) -> None:
        self.start = self.snapshot()

    @staticmethod
    def snapshot() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                ticks = [int(x) for x in f.readline().split()[1:8]]  # user nice system idle ...
        except (OSError, ValueError):
            return None
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait
        return busy, time.process_time(), time.perf_counter()

    def share(self) -> float | None:
        now = self.snapshot()
        if self.start is None or now is None:
            return None
        busy, own, wall = (b - a for a, b in zip(self.start, now, strict=True))
        return round(max(0.0, (busy - own) / (wall * (os.cpu_count() or 1))), 3)


def machine(device: torch.device) -> dict:
    """What the numbers were measured on, and how busy the machine was just before."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info = {
        "torch": torch.__version__,
        "rnnkit": rnnkit.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
    load = OtherLoad()
    time.sleep(1.0)
    info["other_load_before_start"] = load.share()
    return info


def format_table(rows: list[Row]) -> str:
    lines = [["cell", "config", "mode", "torch ms", "native ms", "native/torch", "ref ms",
              "ref/native"]]  # fmt: skip
    for r in rows:
        ref = "-" if r.reference_ms is None else f"{r.reference_ms:.1f}"
        ref_ratio = "-" if r.reference_ratio is None else f"{r.reference_ratio:.2f}"
        lines.append([r.cell, r.config, r.mode, f"{r.torch_ms:.1f}", f"{r.native_ms:.1f}",
                      f"{r.native_ratio:.3f}", ref, ref_ratio])  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    lines.insert(1, ["-" * w for w in widths])
    # Text columns (the first three) are left-aligned, numbers right-aligned.
    return "\n".join(
        "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in lines
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="fwd+bwd only, 4 rounds, no extra warm-up, reference checked but not timed: "
        "about 1.5 min, too few rounds to judge the 1.05 limit",
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds of torch vs rnnkit-native (default 30, 4 with --quick)",
    )
    p.add_argument(
        "--reference-repeats",
        type=int,
        default=None,
        help="timed iterations of the slow reference path (default 3, 0 with --quick)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed iterations per contender and mode, besides the parity check's "
        "(default 1, 0 with --quick)",
    )
    p.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", metavar="PATH", help="also write every row and the machine as JSON")
    args = p.parse_args(argv)
    defaults = (4, 0, 0) if args.quick else (30, 3, 1)
    for flag, default in zip(("repeats", "reference_repeats", "warmup"), defaults, strict=True):
        if getattr(args, flag) is None:
            setattr(args, flag, default)
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.reference_repeats < 0:
        p.error(f"--reference-repeats must be >= 0, got {args.reference_repeats}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: this torch build sees no CUDA device")
    args.modes = ("fwd+bwd",) if args.quick else MODES
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info = machine(device)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    if (info["other_load_before_start"] or 0) > BUSY_LIMIT:
        print(
            f"WARNING: other processes took {info['other_load_before_start']:.0%} of the CPUs "
            "just before the start; timings will be slow and noisy (oneDNN's LSTM most)"
        )
    print(
        f"repeats: {args.repeats} (reference {args.reference_repeats}), warm-up {args.warmup}, "
        f"modes {', '.join(args.modes)}"
    )
    if args.quick:
        print(f"--quick: {args.repeats} rounds are too few to judge the {RATIO_LIMIT} limit")
    print()
    started = time.perf_counter()
    rows: list[Row] = []
    parity_failures: list[str] = []
    for cell in args.cells:
        for shape in SHAPES:
            models = build(cell, shape, device)
            gen = torch.Generator().manual_seed(1)
            tokens = torch.randint(0, VOCAB, (shape.batch_size, shape.steps), generator=gen)
            tokens = tokens.to(device)  # (B, T)
            errors = check_parity(models, tokens)  # also the first warm-up of every contender
            status = "ok"
            if any(e > TOLERANCE for e in errors.values()):
                status = "FAILED"
                parity_failures.append(
                    f"{cell} {shape}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
                )
                print(
                    f"!!! PARITY FAILURE {cell} {shape}: rnnkit differs from torch.nn by more "
                    f"than {TOLERANCE:g}: {errors}"
                )
            line = (
                f"{cell:<4} {shape!s:<17} parity {status} "
                f"(native {errors['native']:.1e}, reference {errors['reference']:.1e})"
            )
            for mode in args.modes:
                load = OtherLoad()
                row = measure(cell, shape, mode, models, tokens, args, device)
                row.other_load = load.share()
                rows.append(row)
                line += f" | {mode} {row.torch_ms:.1f} vs {row.native_ms:.1f} ms"
                if row.other_load is not None:
                    line += f" (others {row.other_load:.0%})"
            print(line + f" | {time.perf_counter() - started:.0f} s", flush=True)

    print("\n" + format_table(rows))
    elapsed = time.perf_counter() - started
    print(f"\nnative/torch: median of per-round ratios; total time {elapsed:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": info, "seconds": elapsed, "rows": [asdict(r) for r in rows]},
                f,
                indent=1,
            )
        print(f"wrote {args.json}")

    crowded = [r for r in rows if (r.other_load or 0) > BUSY_LIMIT]
    for r in crowded:
        print(f"WARNING: other processes took {r.other_load:.0%} of the CPUs during {r.cell} "
              f"{r.config} {r.mode}: its times are inflated and noisy")  # fmt: skip
    slow = [r for r in rows if r.mode == "fwd+bwd" and r.native_ratio > RATIO_LIMIT]
    for r in slow:
        print(
            f"FAIL: {r.cell} {r.config} fwd+bwd native/torch = {r.native_ratio:.3f} > "
            f"{RATIO_LIMIT} (quartiles {r.native_ratio_iqr[0]:.3f}-{r.native_ratio_iqr[1]:.3f})"
        )
    for failure in parity_failures:
        print(f"FAIL: parity {failure}")
    if not slow and not parity_failures:
        print(f"OK: every fwd+bwd native/torch ratio <= {RATIO_LIMIT}, parity within {TOLERANCE:g}")
    return 1 if slow or parity_failures else 0


if __name__ == "__main__":
    sys.exit(main())
