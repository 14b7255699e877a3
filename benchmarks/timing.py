"""Timing helpers shared by the benchmarks: one sample per call, contenders interleaved.

The benchmarks compare contenders on small, shared, noisy machines, so every figure is a ratio
measured in the same run: each round runs every contender once, in an order that rotates every
round, and times each call on its own (a stall spoils one sample, not a mean); garbage
collection is off while sampling, as ``timeit`` does. Imported by the scripts beside it
(``python benchmarks/NAME.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Shape:
    """One benchmark configuration: layers, hidden size, batch and steps (the input or embedding
    size equals ``hidden_size``)."""

    num_layers: int
    hidden_size: int
    batch_size: int
    steps: int

    def __str__(self) -> str:
        return f"L{self.num_layers} H{self.hidden_size} B{self.batch_size} T{self.steps}"


def time_once(fn: Callable[[], object], device: torch.device | None = None) -> float:
    """Milliseconds of one call, with the GPU's queue drained on both sides on CUDA."""
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3


def interleaved(
    runs: dict[str, Callable[[], object]],
    repeats: int,
    *,
    warmup: int = 1,
    device: torch.device | None = None,
) -> dict[str, list[float]]:
    """Per-call times in ms of every contender, the order rotated every round.

    Args:
        runs: name -> a call that runs one iteration.
        repeats: timed rounds.
        warmup: untimed rounds first (allocator, thread pool, first-call dispatch).
        device: drained before and after each call when it is a CUDA device.
    """
    for _ in range(warmup):
        for run in runs.values():
            run()
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.disable()  # a collection must not land inside one contender's sample
    try:
        for r in range(repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(time_once(runs[name], device))
    finally:
        gc.enable()
    return samples


def race(a, b, *, rounds: int, warmup: int, device) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` one call at a time, alternating which goes first."""
    samples = interleaved({"a": a, "b": b}, rounds, warmup=warmup, device=device)
    return samples["a"], samples["b"]


def solo(fn, *, rounds: int, warmup: int, device) -> list[float]:
    """``rounds`` single-call times of ``fn`` alone."""
    if not rounds:
        return []
    return interleaved({"fn": fn}, rounds, warmup=warmup, device=device)["fn"]


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], digits: int = 1) -> str:
    """``min-max`` of the samples, as printed beside each median."""
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def quartiles(values: list[float]) -> tuple[float, float]:
    """The first and third quartiles (both the value itself for one sample)."""
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3
