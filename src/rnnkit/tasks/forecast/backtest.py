"""Walk-forward backtest with an expanding window: retrain, forecast one horizon, step on.

Fold ``k`` of ``K`` ends each series ``(K - k) * horizon`` points before its end; the run's
configuration is trained from scratch on everything before that origin (its own validation part
included, as in the run) and forecasts the next ``horizon`` points, beside the baselines fitted
on the same data. Folds never see their own future, and the last fold's origin is one horizon
before the end of the data.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np

from rnnkit.tasks.forecast.run import (
    SELECT,
    forecast_part,
    load_model,
    read_blend,
    read_run_config,
    score,
    train_forecast,
)
from rnnkit.tasks.forecast.task import (
    ForecastDataConfig,
    ForecastModelConfig,
    Prepared,
    load_series,
)
from rnnkit.training.config import TrainConfig
from rnnkit.training.runs import stored_config


def backtest_run(
    run_dir: str | Path,
    *,
    folds: int = 3,
    data: str | None = None,
    max_steps: int | None = None,
    plot: str | Path | None = None,
) -> dict:
    """Backtest a forecasting run's configuration; fold runs go to ``RUN_DIR/backtest/``.

    Returns the metrics of the model and the baselines over all folds' forecasts (as
    ``evaluate_run`` does), with ``folds``.
    """
    if folds < 1:
        raise ValueError(f"--folds must be >= 1, got {folds}")
    config = read_run_config(run_dir)
    model_cfg = stored_config(ForecastModelConfig, config["task"]["model"])
    data_cfg = stored_config(ForecastDataConfig, config["task"]["data"])
    fold_cfg = dataclasses.replace(data_cfg, test_size=data_cfg.horizon)
    # a refit run's own train flags are its second part's; its first part's are the run's
    trained = read_run_config(Path(run_dir) / SELECT) if data_cfg.refit else config
    if not isinstance(trained.get("train"), dict):
        raise ValueError(f"{run_dir}: config.json has no 'train' settings to retrain with")
    train = {k: v for k, v in trained["train"].items() if k not in ("out", "resume")}
    train.update(progress=False, max_steps=max_steps or train.get("max_steps"))
    series = load_series(data_cfg, data)
    h = data_cfg.horizon
    root = Path(run_dir) / "backtest"
    base_cfg = stored_config(TrainConfig, {**train, "out": str(root / "fold0")})  # checked first
    shutil.rmtree(root, ignore_errors=True)  # our own output of an earlier backtest
    parts = []
    for k in range(folds):
        cut = [len(s) - (folds - k - 1) * h for s in series]
        fold_series = [s.head(n) for s, n in zip(series, cut)]
        out = root / f"fold{k}"
        train_forecast(
            model_cfg, fold_cfg, dataclasses.replace(base_cfg, out=str(out)), series=fold_series
        )
        model, _, scalers = load_model(out)
        prep = Prepared(fold_series, fold_cfg, scalers)
        blend = read_blend(out, fold_cfg)
        parts.append(forecast_part(model, prep, "test", stride=h, blend=blend))
    fc = {
        key: np.concatenate([p[key] for p in parts])
        for key in parts[0]
        if isinstance(parts[0][key], np.ndarray)
    }
    fc["picks"] = [pick for p in parts for pick in p["picks"]]
    result = {
        "data": data or data_cfg.data,
        "split": f"backtest, {folds} folds",
        "checkpoint": "best",
        "series": len(series),
        "origins": len(fc["picks"]),
        "horizon": h,
        "season": data_cfg.season,
        "folds": folds,
        **score(fc, data_cfg.quantile_list),
    }
    if "ets_missing" in parts[0]:
        result["ets_missing"] = parts[0]["ets_missing"]
    if plot is not None:
        from rnnkit.series.plot import plot_forecasts

        full = Prepared.for_future(series, data_cfg, {})
        result["plot"] = str(plot_forecasts(full, fc, plot, title=f"{result['data']} backtest"))
    return result
