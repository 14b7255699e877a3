"""A run's curves as one PNG: the loss (training, smoothed, and validation) beside each
validation figure the task logged (accuracy, macro-F1, error rates, bpc...), by step.

The labels come from the run's ``config.json`` (``log``: what the loss is, what the task counts,
which figure picks the best checkpoint); a run written before it was stored there gets plain
labels. A dotted line marks the best checkpoint's step in every panel.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rnnkit.plotting import pyplot

LABELS = {
    "macro_f1": "macro-F1",
    "bpc": "bits per token (bpc)",
    "mase": "MASE",
    "mae": "MAE",
    "rmse": "RMSE",
}
"""How a validation figure reads on its axis; any other reads as its name with spaces."""
COLUMNS = 3
"""Panels per row."""


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}: is it a run folder?")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_log_labels(run_dir: Path) -> dict:
    """The run's ``config.json`` ``log`` entry: ``loss_label`` and ``monitor`` (and its
    ``kind``), with plain defaults for a run that did not store it (or whose config is
    unreadable)."""
    labels = {"loss_label": "loss", "monitor": ["loss", "min"], "kind": ""}
    try:
        config = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return labels
    if isinstance(config, dict):
        if isinstance(config.get("log"), dict):
            labels.update(config["log"])
        if isinstance(config.get("task"), dict):
            labels["kind"] = str(config["task"].get("kind", ""))
    return labels


def figure_series(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """``{name: [(step, value), ...]}`` of every validation figure other than a loss.

    A figure logged only as whole numbers is a count (the tokens or windows scored), not a
    measure of the model, and is left out; so are nested reports.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    whole: dict[str, bool] = {}
    for r in records:
        for key, value in r.items():
            if not key.startswith("val_") or key.endswith("_loss"):
                continue  # the loss, and a baseline's loss drawn beside it
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            name = key[4:]
            series.setdefault(name, []).append((r["step"], float(value)))
            whole[name] = whole.get(name, True) and isinstance(value, int)
    return {name: points for name, points in series.items() if not whole[name]}


def best_step(records: list[dict], monitor: list | tuple) -> int | None:
    """The step whose validation figure the trainer kept as best (the first best; the lower
    loss breaks a tie), or ``None`` before any validation."""
    key, mode = monitor
    best: tuple[float, float, int] | None = None
    for r in records:
        value, loss = r.get(f"val_{key}"), r.get("val_loss")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        rank = (-value if mode == "max" else value, loss if loss is not None else math.inf)
        if best is None or rank < best[:2]:
            best = (*rank, r["step"])
    return None if best is None else best[2]


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``loss.png`` in the run folder (or ``out``) and return its path: the loss panel,
    then one panel per validation figure (see the module docstring)."""
    run_dir = Path(run_dir)
    fig = draw_run(run_dir)
    path = Path(out) if out else run_dir / "loss.png"
    fig.savefig(path)
    pyplot().close(fig)
    return path


def draw_run(run_dir: str | Path):
    """The matplotlib ``Figure`` that ``plot_run`` saves (its first axes hold the loss)."""
    try:
        plt = pyplot("loss plots")
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'rnnkit[plot]'") from e
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    labels = read_log_labels(run_dir)
    figures = figure_series(records)
    best = best_step(records, labels["monitor"])

    panels = 1 + len(figures)
    columns = min(COLUMNS, panels)
    rows = math.ceil(panels / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.6 * columns, 3.6 * rows), dpi=120, squeeze=False
    )
    axes = axes.ravel()
    _loss_panel(axes[0], records, labels["loss_label"])
    for ax, (name, points) in zip(axes[1:], figures.items()):
        steps, values = zip(*points)
        label = LABELS.get(name, name.replace("_", " "))
        ax.plot(steps, values, "o-", color="tab:green", lw=1.8, ms=4)
        ax.set_ylabel(label)
        ax.set_title(f"validation {label}", fontsize=10)
    for ax in axes[panels:]:
        fig.delaxes(ax)
    for ax in axes[:panels]:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if best is not None:
            ax.axvline(best, color="0.4", ls=":", lw=1.2, label=f"best checkpoint (step {best})")
    axes[0].legend(fontsize=8)
    kind = f" ({labels['kind']})" if labels["kind"] else ""
    fig.suptitle(f"{run_dir.resolve().name}{kind}", fontsize=11)
    fig.tight_layout()
    return fig


def _loss_panel(ax, records: list[dict], loss_label: str) -> None:
    """Training loss (raw, faint, and smoothed) and validation loss; a validation figure named
    ``*_loss`` (a baseline's) shares the loss's units and is drawn here, dashed."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if train:
        steps, losses = zip(*train)
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, lw=1)
        ax.plot(steps, _moving_average(losses), color="tab:blue", lw=1.8, label="train (smoothed)")
    if val:
        steps, losses = zip(*val)
        low = min(losses)
        label = f"validation (lowest {low:.3f})"
        ax.plot(steps, losses, "o-", color="tab:orange", lw=1.8, ms=4, label=label)
    baselines = sorted({k for r in records for k in r if k.startswith("val_") and k != "val_loss"})
    for key in (k for k in baselines if k.endswith("_loss")):
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if points:
            steps, values = zip(*points)
            name = key[4:-5].replace("_", " ")
            ax.plot(steps, values, "--", color="0.5", lw=1.2, label=f"{name} baseline (validation)")
    ax.set_ylabel(loss_label)
    ax.set_title("loss", fontsize=10)
    if "nats per" in loss_label:  # a loss per token reads in bits too (bits per character)
        sec = ax.secondary_yaxis(
            "right", functions=(lambda n: n / math.log(2), lambda b: b * math.log(2))
        )
        sec.set_ylabel(loss_label.replace("nats", "bits"))


def _moving_average(values, points: int = 40) -> list[float]:
    """Trailing mean over about 1/``points`` of the run, so the curve smooths without lagging."""
    window = max(1, len(values) // points)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
