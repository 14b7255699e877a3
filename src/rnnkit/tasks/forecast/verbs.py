"""Forecasting's run verbs as the command line calls them: options and printed form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal


@dataclass(kw_only=True)
class EvaluateOptions:
    """What ``rnnkit evaluate`` forecasts for a forecasting run."""

    data: str | None = None
    """Forecast the held-out tail of this CSV (the run's columns) instead of the run's data."""
    split: Literal["train", "val", "test"] = "test"
    """Which held-out part to forecast: test (the tail) or val (the part before it)."""
    origin_stride: int | None = None
    """Steps between forecast origins in the held-out part (default: the run's --stride)."""
    plot: str | None = None
    """Write the history, the forecasts and their intervals to this PNG (default: none)."""


def format_table(m: dict, options=None) -> str:
    """The model's metrics and the baselines', one row each."""
    lines = [
        f"data {m['data']} [{m['split']}]: {m['series']} series, {m['origins']} origins x "
        f"{m['horizon']} steps, season {m['season']}, checkpoint {m['checkpoint']}",
        f"{'':<16}{'MAE':>11}{'RMSE':>11}{'MAPE %':>9}{'MASE':>8}{'dir.acc':>9}",
    ]
    names = {"model": "model", "network": "network alone", "naive": "naive (last)",
             "seasonal_naive": "seasonal naive", "ets": "ETS"}  # fmt: skip
    for key, label in names.items():
        if key not in m:
            continue
        r = m[key]
        direction = f"{r['direction']:>9.3f}" if "direction" in r else f"{'-':>9}"
        lines.append(
            f"{label:<16}{r['mae']:>11.4g}{r['rmse']:>11.4g}{r['mape']:>9.2f}{r['mase']:>8.3f}"
            f"{direction}"
        )
    lines.append(
        f"directional accuracy: share of forecasts moving the right way from the last value; "
        f"always 'up' scores {m['up_share']:.3f}"
    )
    if m["horizon"] <= 12 and "mase_by_step" in m["model"]:
        for key in ("model", "seasonal_naive"):
            if key in m:
                steps = " ".join(f"{v:.2f}" for v in m[key]["mase_by_step"])
                lines.append(f"MASE by step, {names[key]}: {steps}")
    if "coverage" in m["model"]:
        lo, hi = m["model"]["interval"]
        lines.append(
            f"interval [{lo:g}, {hi:g}] (nominal {hi - lo:.0%}): "
            f"coverage {m['model']['coverage']:.1%}"
        )
    for series, form in m.get("ets_form", {}).items():
        lines.append(f"ETS form for {series}: {form} (chosen on the validation part)")
    if "ets_missing" in m:
        lines.append(f"ETS: not computed ({m['ets_missing']})")
    if "plot" in m:
        lines.append(f"plot: {m['plot']}")
    return "\n".join(lines)


@dataclass(kw_only=True)
class PredictOptions:
    """What ``rnnkit predict`` forecasts for a forecasting run."""

    data: str | None = None
    """Forecast past the end of this CSV (default: the run's data)."""
    format: Literal["table", "csv", "json"] = "table"
    """How to print the forecasts."""


def show_predict(rows: list[dict], options: PredictOptions) -> str:
    if options.format == "json":
        return json.dumps(rows)
    sep = "," if options.format == "csv" else "\t"
    lines = [sep.join(rows[0])]
    for row in rows:
        lines.append(sep.join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row.values()))
    return "\n".join(lines)


@dataclass(kw_only=True)
class BacktestOptions:
    """How ``rnnkit backtest`` walks forward: the run's configuration retrained once per fold,
    each time on the data up to the fold's origin (an expanding window)."""

    folds: int = 3
    """Forecast origins, stepping back from the end one horizon at a time."""
    data: str | None = None
    """Backtest on this CSV (default: the run's data)."""
    max_steps: int | None = None
    """Training steps per fold (default: the run's)."""
    plot: str | None = None
    """Write a PNG of the folds' forecasts."""
