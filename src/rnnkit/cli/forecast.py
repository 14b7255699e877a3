"""The forecasting task on the command line: ``train forecast``, ``evaluate``, ``predict``.

``backtest`` (walk-forward retraining) is a tool verb of its own: ``rnnkit.cli.backtest``.
"""

from __future__ import annotations

import argparse
import json

from rnnkit.cli.train_flags import add_train_groups, build_configs, report
from rnnkit.tasks.forecast.task import ForecastDataConfig, ForecastModelConfig

HELP = "a forecaster of ordered numbers (prices, counts, sensors) from a CSV file"


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    add_train_groups(parser, {"data": ForecastDataConfig, "model": ForecastModelConfig})


def train(args, parser) -> int:
    from rnnkit.tasks.forecast.run import SELECT, read_run_config, train_forecast

    train_cfg, configs = build_configs(
        args,
        parser,
        (ForecastModelConfig, ForecastDataConfig),
        hint=" (a CSV file or a data-set name)",
    )
    model_cfg, data_cfg = configs or (None, None)
    result = train_forecast(model_cfg, data_cfg, train_cfg)
    status = report(result, count="windows", best="loss (scaled units)")
    refit = read_run_config(result.run_dir)["task"]["data"].get("refit")
    if refit and not result.interrupted:
        print(
            f"refit: {result.counters.step} steps on training + validation (the step "
            f"{result.run_dir / SELECT} chose); its validation loss above is not held out"
        )
    print(f"next: rnnkit evaluate {result.run_dir}")
    return status


def add_evaluate_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--origin-stride",
        type=int,
        default=None,
        help="steps between forecast origins in the held-out part (default: the run's --stride)",
    )


def format_table(m: dict) -> str:
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


def evaluate(args, parser) -> int:
    from rnnkit.tasks.forecast.run import evaluate_run

    m = evaluate_run(
        args.run_dir,
        data=args.data,
        split=args.split,
        which=args.checkpoint,
        device=args.device,
        stride=args.origin_stride,
        plot=args.plot,
    )
    print(json.dumps(m) if args.json else format_table(m))
    return 0


def add_predict_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default=None, help="forecast past the end of this CSV (default: the run's data)"
    )
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")


def predict(args, parser) -> int:
    from rnnkit.tasks.forecast.run import predict_run

    rows = predict_run(args.run_dir, data=args.data, which=args.checkpoint, device=args.device)
    fmt = getattr(args, "format", "table")
    if fmt == "json":
        print(json.dumps(rows))
        return 0
    keys = list(rows[0])
    sep = "," if fmt == "csv" else "\t"
    print(sep.join(keys))
    for row in rows:
        print(sep.join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row.values()))
    return 0
