"""The memory benchmark: which sequence lengths each cell learns to bridge.

``rnnkit bench memory``: each cell is trained on the adding problem or the copy task
(``rnnkit.diagnose.memory``) at growing lengths, from fixed seeds with a per-run step budget.
``benchmark_setup`` fills in each task's own budget, ``bench_memory`` runs the grid (and, with
``horizons``, measures each trained model's gradient flow), ``format_table`` and
``plot_memory`` show the result.

Example::

    lengths, cfg = benchmark_setup("adding", quick=True)
    results = bench_memory("adding", ["rnn", "lstm"], lengths, cfg, horizons=True)
    print(format_table(results, lengths))
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from rnnkit.cells.registry import cell_names
from rnnkit.diagnose.gradients import GradientFlow, gradient_flow
from rnnkit.diagnose.memory import (
    ADDING_BASELINE,
    MemoryConfig,
    MemoryResult,
    TaskName,
    make_batch,
    train_memory,
)
from rnnkit.plotting import pyplot

# The default budgets stay under ~20 minutes on one thread: the adding run about 10 (estimated
# from per-step costs), the copy run 14.5 (measured, shared machine); see docs/diagnose.md. The copy
# task learns far more slowly than the adding problem, so it gets more steps, a wider layer and
# shorter lengths.
TASK_DEFAULTS: dict[str, dict] = {
    "adding": dict(lengths=[10, 20, 50, 100, 200, 400], max_steps=2500, hidden_size=64),
    "copy": dict(lengths=[10, 20, 50], max_steps=6000, hidden_size=128),
}
QUICK = dict(
    lengths=[5, 10], max_steps=60, hidden_size=16, batch_size=16, eval_every=30, eval_size=64
)
"""A tiny smoke run (seconds; for tests): it replaces whatever was given for these."""


def benchmark_setup(
    task: TaskName, *, quick: bool = False, lengths: list[int] | None = None, **given
) -> tuple[list[int], MemoryConfig]:
    """The lengths and the per-run ``MemoryConfig`` of a benchmark of ``task``.

    ``given`` holds ``MemoryConfig`` fields; a value of None counts as not given. What is not
    given comes from the task's own defaults (``TASK_DEFAULTS``), then from ``MemoryConfig``;
    ``quick`` replaces lengths, budget and sizes by ``QUICK``'s, whatever was given.
    """
    if task not in TASK_DEFAULTS:
        raise ValueError(f"--task must be one of {', '.join(TASK_DEFAULTS)}, got {task!r}")
    values = {**TASK_DEFAULTS[task], **{k: v for k, v in given.items() if v is not None}}
    if lengths is not None:
        values["lengths"] = lengths
    if quick:
        values.update(QUICK)
    lengths = values.pop("lengths")
    if not lengths or min(lengths) < 1:
        raise ValueError(f"--lengths takes positive integers, got {lengths}")
    return list(lengths), MemoryConfig(**values)


def parse_lr(text: str) -> float | dict[str, float]:
    """``--lr``: one number for every cell, or ``cell=lr`` pairs (``lstm=1e-2,rnn=5e-3``)."""
    try:
        if "=" not in text:
            return float(text)
        pairs = [p.split("=") for p in text.split(",") if p.strip()]
        return {cell.strip(): float(v) for cell, v in pairs}
    except ValueError:
        raise ValueError(
            f"--lr takes a number or cell=lr pairs (lstm=1e-2,rnn=5e-3), got {text!r}"
        ) from None


def format_lr(lr: float | dict[str, float]) -> str:
    """The learning rate as ``--lr`` writes it: ``1e-2`` or ``rnn=0.005,lstm=0.01``."""
    if isinstance(lr, dict):
        return ",".join(f"{c}={v:g}" for c, v in lr.items())
    return f"{lr:g}"


def trained_horizon(result: MemoryResult, seed: int = 0) -> GradientFlow:
    """The gradient flow of a trained memory model (``result.model``) on its own task and
    length, loss at the last step, without Jacobians."""
    model = result.model
    if model is None:
        raise ValueError("the result keeps no model: train it with keep_model=True")
    x, y = make_batch(result.task, 16, result.length, torch.Generator().manual_seed(seed + 77))
    feats = model.features(x)
    if result.task == "adding":

        def loss_fn(out):
            return (model.head(out).squeeze(-1) - y[:, None]) ** 2

    else:

        def loss_fn(out):
            return F.cross_entropy(model.head(out).transpose(1, 2), y, reduction="none")

    return gradient_flow(model.rnn, feats, loss_fn=loss_fn, jacobians=False, label=result.cell)


def bench_memory(
    task: TaskName,
    cells: list[str],
    lengths: list[int],
    cfg: MemoryConfig | None = None,
    *,
    keep_models: bool = False,
    horizons: bool = False,
    stop_after_fail: bool = True,
    progress: Callable[[MemoryResult], None] | None = None,
) -> list[MemoryResult]:
    """Each cell at each length (shortest first), each run from the same seed.

    With ``stop_after_fail`` a cell that fails a length is not tried at longer ones (they are
    harder, and the longest runs are the costliest); ``format_table`` shows them as skipped.
    With ``horizons`` each trained model's gradient flow is kept in ``flow``
    (``trained_horizon``); the model itself only with ``keep_models``. ``progress`` is called
    after each run. Results are in (cell, length) order.
    """
    for c in cells:
        if c not in cell_names():
            raise ValueError(f"--cells: {c!r} is not one of {', '.join(cell_names())}")
    seed = (cfg or MemoryConfig()).seed
    results = []
    for cell in cells:
        for length in sorted(lengths):
            r = train_memory(task, cell, length, cfg, keep_model=keep_models or horizons)
            if horizons:
                r.flow = trained_horizon(r, seed)
                if not keep_models:
                    r.model = None  # the flow is what was wanted; free the model
            if progress is not None:
                progress(r)
            results.append(r)
            if stop_after_fail and not r.solved:
                break
    return results


def longest_solved(results: list[MemoryResult], cell: str) -> int | None:
    """The longest length a cell solved such that it also solved every shorter length tried."""
    best = None
    for r in sorted((r for r in results if r.cell == cell), key=lambda r: r.length):
        if not r.solved:
            break
        best = r.length
    return best


def format_table(results: list[MemoryResult], lengths: list[int] | None = None) -> str:
    """One row per cell, one column per length (``lengths``, default those run): the metric,
    starred where solved; "skipped" where a cell was not run after failing a shorter length."""
    if not results:
        return "(no runs)"
    task = results[0].task
    lengths = sorted(set(lengths or []) | {r.length for r in results})
    cells = list(dict.fromkeys(r.cell for r in results))
    by = {(r.cell, r.length): r for r in results}
    what = "test MSE (solved < 0.01)" if task == "adding" else "recall accuracy (solved >= 0.99)"
    lines = [f"{task}: {what}; * = solved, [steps trained]"]
    head = f"{'cell':<13}" + "".join(f"{'T=' + str(t):>17}" for t in lengths) + "   solves up to"
    lines.append(head)
    for cell in cells:
        row = f"{cell:<13}"
        for t in lengths:
            r = by.get((cell, t))
            if r is None:
                row += f"{'skipped':>17}"
                continue
            value = f"{r.metric:.4f}" if task == "adding" else f"{100 * r.metric:.1f}%"
            row += f"{(value + ('*' if r.solved else ' ') + f' [{r.steps}]'):>17}"
        best = longest_solved(results, cell)
        row += f"   {'none' if best is None else 'T=' + str(best)}"
        lines.append(row)
    return "\n".join(lines)


def plot_memory(results: list[MemoryResult], out) -> None:
    """Metric against length, one line per cell, log-scale length; the solve threshold dashed."""
    plt = pyplot("memory-benchmark plots")

    task = results[0].task
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for cell in dict.fromkeys(r.cell for r in results):
        rs = sorted((r for r in results if r.cell == cell), key=lambda r: r.length)
        xs = [r.length for r in rs]
        ys = [r.metric if task == "adding" else 1 - r.metric for r in rs]
        ax.plot(xs, ys, marker="o", label=cell)
        for r, y in zip(rs, ys):
            if r.solved:
                ax.plot([r.length], [y], marker="o", ms=11, mfc="none", color="k", lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if task == "adding":
        ax.axhline(0.01, ls="--", color="gray", lw=1, label="solved (MSE 0.01)")
        ax.axhline(ADDING_BASELINE, ls=":", color="gray", lw=1, label="answer 1 always (0.167)")
        ax.set_ylabel("test MSE")
    else:
        ax.axhline(0.01, ls="--", color="gray", lw=1, label="solved (1 % errors)")
        ax.axhline(7 / 8, ls=":", color="gray", lw=1, label="guessing (7/8 errors)")
        ax.set_ylabel("recall error rate")
    ax.set_xlabel("sequence length T")
    ax.set_title(f"{task}: circled points are solved")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
