"""A forecasting run from start to finish: train, load, evaluate beside baselines, predict.

Each function is one call a Python user can make too::

    from rnnkit.tasks.forecast.run import train_forecast, evaluate_run, predict_run
    train_forecast(ForecastModelConfig(), ForecastDataConfig(data="airline", lookback=36),
                   TrainConfig(out="runs/air", max_steps=1500))
    evaluate_run("runs/air")["model"]["mape"]
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import numpy as np

from rnnkit.series.baselines import ETSBaseline, blend_weights, naive, seasonal_naive
from rnnkit.series.calendar import future_times
from rnnkit.series.metrics import coverage, directional_accuracy, mase_scale, point_metrics
from rnnkit.series.table import Series
from rnnkit.series.windows import Scaler
from rnnkit.tasks.base import Loaded, load_run
from rnnkit.tasks.forecast.task import (
    ForecastDataConfig,
    ForecastModelConfig,
    ForecastTask,
    Prepared,
    build_forecaster,
    forecast_raw,
    load_series,
    point_index,
    resolve_season,
)
from rnnkit.training import checkpoint as ckpt
from rnnkit.training import runs
from rnnkit.training.config import TrainConfig
from rnnkit.training.runs import stored_config
from rnnkit.training.trainer import CONFIG, LAST, RunResult, Trainer, resolve_device

BASELINES = ("naive", "seasonal_naive", "ets")
BLEND = "blend.json"
"""A ``--blend`` run's weights per horizon step, chosen on the validation part after training."""
SELECT = "select"
"""The sub-folder of a ``refit`` run holding its first run (the one validation scored)."""


def read_run_config(run_dir: str | Path) -> dict:
    """The stored ``config.json`` of a run, checked to be a forecasting run."""
    return runs.read_run_config(run_dir, ("forecast",), "forecasting")


def train_forecast(
    model_cfg: ForecastModelConfig | None,
    data_cfg: ForecastDataConfig | None,
    train_cfg: TrainConfig,
    *,
    series: list[Series] | None = None,
    callbacks=(),
) -> RunResult:
    """Train (or with ``train_cfg.resume``, continue) a forecaster into ``train_cfg.out``.

    ``series`` replaces reading ``data_cfg.data`` (the backtest trains on cut-down copies).
    On resume the model and data configs come from the run's config.json. With
    ``data_cfg.refit`` the run trains twice: into ``out/select`` on the training part (the
    validation part picks the best step), then into ``out`` from the same seed on the training
    and validation parts for that many steps; the second is the run's network.
    """
    run = Path(train_cfg.out)
    refit_started = (run / CONFIG).exists()  # for a refit run: its first part is done
    if train_cfg.resume and not refit_started and (run / SELECT / CONFIG).exists():
        stored = read_run_config(run / SELECT)["task"]  # a refit run stopped in its first part
        model_cfg = stored_config(ForecastModelConfig, stored["model"])
        data_cfg = dataclasses.replace(
            stored_config(ForecastDataConfig, stored["data"]), refit=True
        )
    else:
        model_cfg, data_cfg, _ = runs.run_configs(
            train_cfg, "forecast", ForecastModelConfig, ForecastDataConfig, model_cfg, data_cfg
        )
    series = series if series is not None else load_series(data_cfg)
    data_cfg, note = resolve_season(data_cfg, series)
    if note:
        print(f"season {data_cfg.season} ({note}; choose with --season)", flush=True)
    if not data_cfg.refit:
        result = _train(model_cfg, data_cfg, train_cfg, series, callbacks)
        if data_cfg.blend != "none" and not result.interrupted:
            fit_blend(run, series)
        return result
    if not train_cfg.resume and (refit_started or (run / LAST).exists()):
        raise FileExistsError(
            f"{run} already holds a run; continue it with --resume, or choose another --out "
            "(nothing there was changed)"
        )
    if train_cfg.resume and refit_started:
        steps = read_run_config(run)["train"]["max_steps"]  # the step the first part chose
    else:
        select = dataclasses.replace(
            train_cfg, out=str(run / SELECT), resume=train_cfg.resume and (run / SELECT).exists()
        )
        first = _train(
            model_cfg, dataclasses.replace(data_cfg, refit=False), select, series, callbacks
        )
        if first.interrupted:
            print(f"(a --refit run: continue it with --resume --out {run})", file=sys.stderr)
            return dataclasses.replace(first, run_dir=run)
        if data_cfg.blend != "none":
            fit_blend(run / SELECT, series)
        steps = max(first.counters.best_step, 1)
    final = dataclasses.replace(
        train_cfg,
        max_steps=steps,
        time_budget=None,
        token_budget=None,
        patience=None,
        eval_every=steps,  # one evaluation, at the end: the last weights are the run's
        resume=train_cfg.resume and refit_started,
    )
    result = _train(model_cfg, data_cfg, final, series, callbacks)
    if data_cfg.blend != "none" and not result.interrupted:
        # the refit network's validation part is not held out: it keeps the first run's weights
        shutil.copyfile(run / SELECT / BLEND, run / BLEND)
    return result


def _train(model_cfg, data_cfg, train_cfg, series, callbacks) -> RunResult:
    task = ForecastTask(
        model_cfg,
        data_cfg,
        series,
        batch_size=train_cfg.batch_size,
        seed=train_cfg.seed,
        device=resolve_device(train_cfg.device),
    )
    return Trainer(task, train_cfg, callbacks).run()


def rebuild(task: dict) -> Loaded:
    """A forecasting run's (untrained) forecaster, data config and per-series scalers."""
    data_cfg = stored_config(ForecastDataConfig, task["data"])
    model = build_forecaster(
        task["inputs"], data_cfg, stored_config(ForecastModelConfig, task["model"])
    )
    scalers = {k: Scaler.from_json(v) for k, v in task["scalers"].items()}
    return Loaded(model, {"data_cfg": data_cfg, "scalers": scalers})


def load_model(run_dir: str | Path, which: str = "best", device: str = "cpu"):
    """A run's forecaster (``best`` or ``last`` weights), data config and per-series scalers."""
    run = load_run(run_dir, which, device, kinds=("forecast",))
    return run.model, run.extra["data_cfg"], run.extra["scalers"]


def forecast_part(
    model,
    prep: Prepared,
    part: str,
    *,
    stride: int,
    baselines: bool = True,
    blend: np.ndarray | None = None,
) -> dict:
    """Model and baseline forecasts for every origin of ``part`` in every series, with actuals.

    Returns arrays (N origins, horizon): ``actual``, ``model`` (the point forecast),
    ``seasonal_naive``, the other baselines with ``baselines``, ``lower``/``upper`` (the
    outermost quantiles, when there are any), ``last`` (the value before each origin),
    ``scale`` (each row's MASE denominator), plus ``picks``. With ``blend`` weights (see
    ``read_blend``) ``model`` is the combination and ``network`` the network alone.
    """
    d = prep.data
    picks = prep.picks(part, stride)
    if not picks:
        raise ValueError(f"the {part} part holds no complete forecast window")
    device = next(model.parameters()).device
    raw = forecast_raw(model, prep, picks, device)  # (N, H, Q)
    ys = [s.target for s in prep.series]
    snaive = np.stack([seasonal_naive(ys[s], o, d.horizon, d.season) for s, o in picks])
    out: dict = {"picks": picks, "seasonal_naive": snaive}
    if blend is not None:
        out["network"] = raw[:, :, point_index(d)]
        raw = blended(raw, point_index(d), snaive, blend)
    out["model"] = raw[:, :, point_index(d)]
    if d.quantile_list:
        out["lower"], out["upper"] = raw[:, :, 0], raw[:, :, -1]
    out["actual"] = np.stack([ys[s][o : o + d.horizon] for s, o in picks])
    out["last"] = np.array([ys[s][o - 1] for s, o in picks])
    scales = [mase_scale(y[: b.test_start], d.season) for y, b in zip(ys, prep.bounds)]
    out["scale"] = np.array([scales[s] for s, _ in picks])
    if baselines:
        out["naive"] = np.stack([naive(ys[s], o, d.horizon) for s, o in picks])
        try:
            ets = [
                ETSBaseline.fit(y, b.val_start, b.test_start, d.horizon, d.season)
                for y, b in zip(ys, prep.bounds)
            ]
            out["ets"] = np.stack([ets[s].forecast(ys[s], o, d.horizon) for s, o in picks])
            out["ets_form"] = {prep.series[i].id: e.describe() for i, e in enumerate(ets)}
        except ImportError as e:
            out["ets_missing"] = str(e)
    return out


def blended(raw: np.ndarray, point: int, snaive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Forecasts (N, H, Q) whose point output is ``w * network + (1 - w) * seasonal naive`` per
    step; the other quantiles move with it, so intervals keep their width."""
    shift = (weights - 1.0) * (raw[:, :, point] - snaive)
    return raw + shift[:, :, None]


def fit_blend(run_dir: str | Path, series: list[Series]) -> np.ndarray:
    """Choose a run's blend weights on the validation part of ``series`` with its best weights;
    store them in ``run_dir/blend.json``."""
    model, data_cfg, scalers = load_model(run_dir)
    fc = forecast_part(model, Prepared(series, data_cfg, scalers), "val", stride=1, baselines=False)
    scale = fc["scale"][:, None]  # MASE units, so that no one series' size decides
    weights = blend_weights(fc["model"] / scale, fc["seasonal_naive"] / scale, fc["actual"] / scale)
    ckpt.atomic_write_json(Path(run_dir) / BLEND, {"weights": weights.tolist()})
    return weights


def read_blend(run_dir: str | Path, data_cfg: ForecastDataConfig) -> np.ndarray | None:
    """A run's blend weights (None when it has no ``--blend``)."""
    if data_cfg.blend == "none":
        return None
    path = Path(run_dir) / BLEND
    if not path.exists():
        raise ckpt.CheckpointError(
            f"{run_dir} was trained with --blend {data_cfg.blend} but has no {BLEND}: its training "
            "did not finish; continue it with --resume"
        )
    weights = np.array(ckpt.read_json(path, "blend weights")["weights"], dtype=float)
    if weights.shape != (data_cfg.horizon,):
        raise ckpt.CheckpointError(f"{path} holds {weights.size} weights, not one per step")
    return weights


def score(fc: dict, quantiles: list[float]) -> dict:
    """Metrics of the model and each baseline present in ``fc`` (see ``forecast_part``)."""
    a, scale = fc["actual"], fc["scale"][:, None]
    result: dict = {}
    for name in ("model", "network", *BASELINES):
        if name not in fc:
            continue
        m = point_metrics(a, fc[name], scale)
        # MASE of each horizon step: where a forecast beats a baseline, and where it stops
        m["mase_by_step"] = np.mean(np.abs(a - fc[name]) / scale, axis=0).round(4).tolist()
        if (fc[name] != fc["last"][:, None]).any():  # a forecast that never moves has no direction
            m["direction"] = directional_accuracy(fc["last"][:, None], a, fc[name])
        result[name] = m
    # the accuracy of always forecasting "up", the bar for directional accuracy
    moves = np.sign(a - fc["last"][:, None])
    result["up_share"] = float(np.mean(moves[moves != 0] > 0)) if (moves != 0).any() else 0.0
    if "lower" in fc:
        result["model"]["coverage"] = coverage(a, fc["lower"], fc["upper"])
        result["model"]["interval"] = [quantiles[0], quantiles[-1]]
    return result


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | None = None,
    split: str = "test",
    which: str = "best",
    device: str = "cpu",
    origin_stride: int | None = None,
    plot: str | Path | None = None,
    series: list[Series] | None = None,
) -> dict:
    """Forecast the held-out ``split`` (test: the tail) of the run's data or of ``data`` (a CSV
    with the run's columns) or of ``series``, from every ``origin_stride``-th origin (default:
    the run's ``--stride``), beside the baselines.

    A series the run was trained on is scaled with its stored training statistics; a new one with
    statistics of its own part before the held-out tail.
    """
    if split not in ("val", "test"):
        raise ValueError(f"--split must be val or test for a forecasting run, got {split!r}")
    model, data_cfg, scalers = load_model(run_dir, which, device)
    if split == "val" and data_cfg.refit:
        raise ValueError(
            f"{run_dir} was refitted on its validation part (--refit), so that part is not "
            f"held out. Its first run, {Path(run_dir) / SELECT}, can be scored there, but that "
            "part also chose its checkpoint (and any blend), so the figures flatter it; "
            "benchmarks/forecast.py --split val shows how to hold a part out for choosing"
        )
    series = series if series is not None else load_series(data_cfg, data)
    prep = Prepared(series, data_cfg, scalers)
    stride = origin_stride or data_cfg.stride
    fc = forecast_part(model, prep, split, stride=stride, blend=read_blend(run_dir, data_cfg))
    result = {
        "data": data or data_cfg.data,
        "split": split,
        "checkpoint": which,
        "series": len(series),
        "origins": len(fc["picks"]),
        "horizon": data_cfg.horizon,
        "season": data_cfg.season,
        **score(fc, data_cfg.quantile_list),
    }
    if "ets_form" in fc:
        result["ets_form"] = fc["ets_form"]
    if "ets_missing" in fc:
        result["ets_missing"] = fc["ets_missing"]
    if plot is not None:
        from rnnkit.series.plot import plot_forecasts

        result["plot"] = str(plot_forecasts(prep, fc, plot, title=f"{result['data']} [{split}]"))
    return result


def predict_run(
    run_dir: str | Path, *, data: str | None = None, which: str = "best", device: str = "cpu"
) -> list[dict]:
    """Forecast the ``horizon`` steps after the end of each series of the run's data (or of
    ``data``): one row per series and step, with the quantiles when the run has them."""
    model, data_cfg, scalers = load_model(run_dir, which, device)
    series = load_series(data_cfg, data)
    for s in series:
        if len(s) < data_cfg.lookback:
            raise ValueError(
                f"series {s.id!r} has {len(s)} points; forecasting needs the last "
                f"--lookback {data_cfg.lookback}"
            )
    prep = Prepared.for_future(series, data_cfg, scalers)
    picks = [(i, len(s)) for i, s in enumerate(series)]
    raw = forecast_raw(model, prep, picks, next(model.parameters()).device)
    weights = read_blend(run_dir, data_cfg)
    if weights is not None:
        h, m = data_cfg.horizon, data_cfg.season
        snaive = np.stack([seasonal_naive(s.target, len(s), h, m) for s in series])
        raw = blended(raw, point_index(data_cfg), snaive, weights)
    qs = data_cfg.quantile_list
    rows = []
    for i, s in enumerate(series):
        times = future_times(s.times, data_cfg.horizon)
        for h in range(data_cfg.horizon):
            row = {"series": s.id, "step": h + 1, "time": str(times[h])}
            row["forecast"] = float(raw[i, h, point_index(data_cfg)])
            row.update({f"q{q:g}": float(raw[i, h, j]) for j, q in enumerate(qs)})
            rows.append(row)
    return rows
