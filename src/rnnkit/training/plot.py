"""The loss curve of a run as a PNG: training loss (smoothed) and validation loss by step."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rnnkit.plotting import pyplot


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


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``loss.png`` in the run folder (or ``out``) and return its path."""
    try:
        plt = pyplot("loss plots")
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'rnnkit[plot]'") from e
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    if train:
        steps, losses = zip(*train)
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, lw=1)
        ax.plot(steps, _moving_average(losses), color="tab:blue", lw=1.8, label="train (smoothed)")
    if val:
        steps, losses = zip(*val)
        ax.plot(steps, losses, "o-", color="tab:orange", lw=1.8, ms=4, label="validation")
        best = min(val, key=lambda sv: sv[1])
        ax.annotate(
            f"best {best[1]:.3f}",
            best,
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend()
    sec = ax.secondary_yaxis(
        "right", functions=(lambda n: n / math.log(2), lambda b: b * math.log(2))
    )
    sec.set_ylabel("bits per token")
    fig.tight_layout()
    path = Path(out) if out else run_dir / "loss.png"
    fig.savefig(path)
    plt.close(fig)
    return path


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
