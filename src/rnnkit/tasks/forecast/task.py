"""Forecasting ordered numbers: a recurrent network reads ``lookback`` steps and forecasts
``horizon`` more, per series, beside naive, seasonal-naive and exponential-smoothing baselines.

Two modes. ``direct``: the last step's output holds all ``horizon`` forecasts at once.
``autoregressive``: the network learns one step ahead at every position (teacher forcing) and
forecasts by feeding its own forecasts back; it takes the target alone as input. With
``quantiles`` the loss is the pinball (quantile) loss and the outputs give prediction intervals;
the point forecast is the median. Everything the network sees is scaled by statistics of each
series' training part only (``rnnkit.series.windows``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.architectures.forecaster import Forecaster, ForecasterEnsemble
from rnnkit.comma_lists import split_commas
from rnnkit.datasets.registry import stored_data_path
from rnnkit.series.calendar import infer_season
from rnnkit.series.table import FillName, Series, SeriesError, read_series_csv
from rnnkit.series.windows import (
    Bounds,
    ReferenceName,
    Scaler,
    TransformName,
    Windows,
    cut_windows,
    fit_scalers,
    origins,
    split_bounds,
)
from rnnkit.tasks.network_config import LayerOptions, check_network, layer_options
from rnnkit.training.config import check_types
from rnnkit.training.task import Task

ModeName = Literal["direct", "autoregressive"]
BlendName = Literal["none", "seasonal"]


@dataclass(kw_only=True)
class ForecastModelConfig(LayerOptions):
    """The network: recurrent layers over the window, a linear head forecasting the horizon."""

    cell: str = "lstm"
    """Recurrent cell: {cells}."""
    hidden_size: int = 64
    """Hidden units per layer."""
    num_layers: int = 1
    """Stacked recurrent layers."""
    dropout: float = 0.0
    """Dropout between layers and before the head, in training."""
    members: int = 1
    """Networks in an ensemble: each is initialised and trained on its own loss, and the forecast
    is their mean (lower variance on small series; training takes ``members`` times as long)."""

    def __post_init__(self) -> None:
        check_network(self, ("hidden_size", "num_layers", "members"))


@dataclass(kw_only=True)
class ForecastDataConfig:
    """The series, the window, the held-out parts and the repairs allowed."""

    data: str
    """A CSV file (.csv, .csv.gz) with a header row, or a data-set name (`rnnkit datasets`)."""
    time_col: str | None = None
    """The timestamp column (numbers or dates); default: the named data set's."""
    time_format: str | None = None
    """A strptime format for the timestamps, e.g. %Y%m%d for 19580329 (default: numbers, or
    dates like 2020-01-31, 2020-01, 1/31/2020; the named data set's where it has one)."""
    target: str | None = None
    """The column to forecast; default: the named data set's."""
    features: str | None = None
    """More numeric input columns, comma-separated (direct mode only)."""
    series_col: str | None = None
    """A series-id column, when the file holds several series (windows never cross series)."""
    lookback: int = 24
    """Past steps the network reads."""
    horizon: int = 12
    """Future steps forecast from each origin."""
    mode: ModeName = "direct"
    """direct: all horizon steps at once; autoregressive: one step, fed back."""
    quantiles: str | None = None
    """Quantiles to forecast for prediction intervals, e.g. 0.1,0.5,0.9 (0.5 is added)."""
    season: int | None = None
    """Season length in steps, for seasonal naive, ETS and MASE (default: the data set's, else
    inferred from the timestamps and stored in the run: hourly 24, daily 7, weekdays only 5,
    weekly 52, monthly 12, quarterly 4, else 1)."""
    test_size: int | None = None
    """Points held out at the end of each series for testing (default: the horizon)."""
    val_size: int | None = None
    """Points before the test tail for validation (default: the test size)."""
    transform: TransformName = "none"
    """log: model the log of the series (positive series with multiplicative swings); sqrt: its
    square root (non-negative counts whose spread grows with the level, e.g. sunspots)."""
    reference: ReferenceName = "last"
    """Forecast relative to: none, last (the last input value) or seasonal (seasonal naive)."""
    fill: FillName = "none"
    """Missing values: none (an error), linear (interpolate) or previous (carry forward)."""
    sort: bool = False
    """Sort rows by time instead of refusing timestamps out of order."""
    stride: int = 1
    """Steps between forecast origins when evaluating a held-out part."""
    blend: BlendName = "none"
    """seasonal: forecast each horizon step as w * network + (1 - w) * seasonal naive, with w
    in 0, 0.05, ..., 1 chosen per step by the MASE on the validation part (a forecast
    combination; evaluate reports the network alone beside it)."""
    refit: bool = False
    """After training (the validation part picks the number of steps; that run is kept in
    RUN/select), train again from the same seed on the training and validation parts together
    for that many steps (the learning-rate schedule runs its course in them), with the scaler
    refitted on both: the run forecasts from all the data before the test tail, as the ETS
    baseline does. The test tail stays unseen."""

    def __post_init__(self) -> None:
        check_types(self)
        self.data = stored_data_path(self.data)
        from rnnkit.datasets.load import series_defaults

        defaults = series_defaults(self.data)
        for name in ("time_col", "time_format", "target", "season"):
            if getattr(self, name) is None and name in defaults:
                setattr(self, name, defaults[name])
        if self.time_col is None or self.target is None:
            raise ValueError(
                f"--time-col and --target are required for {self.data!r} (only named data sets "
                "have defaults)"
            )
        # season None: inferred from the timestamps when the series are read (resolve_season)
        for flag, value in (
            ("--lookback", self.lookback),
            ("--horizon", self.horizon),
            ("--season", 1 if self.season is None else self.season),
            ("--stride", self.stride),
        ):
            if value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        self.test_size = self.horizon if self.test_size is None else self.test_size
        self.val_size = self.test_size if self.val_size is None else self.val_size
        if self.test_size < self.horizon or self.val_size < self.horizon:
            raise ValueError(
                f"--test-size ({self.test_size}) and --val-size ({self.val_size}) must each hold "
                f"at least one horizon ({self.horizon})"
            )
        if self.mode not in ("direct", "autoregressive"):
            raise ValueError(f"--mode must be direct or autoregressive, got {self.mode!r}")
        if self.mode == "autoregressive" and self.feature_list:
            raise ValueError(
                "--mode autoregressive feeds its own forecasts back, so it takes no --features "
                "(their future values are unknown); use --mode direct"
            )
        if self.reference not in ("none", "last", "seasonal"):
            raise ValueError(f"--reference must be none, last or seasonal; got {self.reference!r}")
        if self.blend not in ("none", "seasonal"):
            raise ValueError(f"--blend must be none or seasonal, got {self.blend!r}")
        if self.mode == "autoregressive" and self.reference == "seasonal":
            raise ValueError("--reference seasonal works with --mode direct only")
        self.quantile_list  # noqa: B018 (validates)

    @property
    def feature_list(self) -> list[str]:
        return split_commas(self.features or "")

    @property
    def quantile_list(self) -> list[float]:
        """The quantiles, sorted, with 0.5 in; empty for a point forecast."""
        if not self.quantiles:
            return []
        try:
            qs = {float(q) for q in self.quantiles.split(",") if q.strip()}
        except ValueError:
            raise ValueError(
                f"--quantiles must be numbers like 0.1,0.5,0.9; got {self.quantiles!r}"
            ) from None
        if not all(0 < q < 1 for q in qs):
            raise ValueError(
                f"--quantiles must lie strictly between 0 and 1; got {self.quantiles!r}"
            )
        return sorted(qs | {0.5})


def load_series(data: ForecastDataConfig, source: str | None = None) -> list[Series]:
    """Read the series of ``source`` (default ``data.data``) with the config's columns."""
    from rnnkit.datasets.load import series_path

    return read_series_csv(
        series_path(source or data.data),
        time_col=data.time_col,
        target=data.target,
        features=data.feature_list,
        series_col=data.series_col,
        fill=data.fill,
        sort=data.sort,
        time_format=data.time_format,
    )


def resolve_season(
    data: ForecastDataConfig, series: list[Series]
) -> tuple[ForecastDataConfig, str]:
    """``data`` with its season inferred from the series' timestamps when none was given (see
    ``rnnkit.series.calendar.infer_season``), and a note saying how (empty when it was given).

    An inferred season longer than the shortest series' training part (its points before the
    validation and test parts) falls back to 1, which the note says: a season has to fit before
    the first held-out forecast.
    """
    if data.season is not None:
        return data, ""
    season, note = infer_season([s.times for s in series])
    training = min(len(s) for s in series) - data.val_size - data.test_size  # type: ignore[operator]
    if season > 1 and training < season:
        note += f", but a training part of {training} points is shorter than {season}"
        season = 1
    return dataclasses.replace(data, season=season), note


def pinball_loss(pred: Tensor, y: Tensor, quantiles: Tensor) -> Tensor:
    """Mean quantile loss: ``pred`` (..., Q) against ``y`` (...)."""
    diff = y.unsqueeze(-1) - pred
    return torch.maximum(quantiles * diff, (quantiles - 1) * diff).mean()


class Prepared:
    """Series cut into parts and scaled with their training parts' statistics."""

    def __init__(
        self,
        series: list[Series],
        data: ForecastDataConfig,
        scalers: dict[str, Scaler] | None = None,
    ) -> None:
        data, _ = resolve_season(data, series)
        self.series, self.data = series, data
        self.bounds: list[Bounds] = [
            split_bounds(
                len(s),
                lookback=data.lookback,
                horizon=data.horizon,
                val_size=data.val_size,
                test_size=data.test_size,
                where=f"series {s.id!r}",
            )
            for s in series
        ]
        for s, b in zip(series, self.bounds):
            if b.val_start < data.season:
                raise SeriesError(
                    f"series {s.id!r}: its training part ({b.val_start} points) is shorter than "
                    f"one season ({data.season}); seasonal naive, MASE and --blend need a full "
                    "season before the first held-out forecast; lower --season or the held-out "
                    "sizes"
                )
        fitted = fit_scalers(series, self.bounds, data.transform, with_val=data.refit)
        known = scalers or {}
        self.scalers = [known.get(s.id, f) for s, f in zip(series, fitted)]
        self.scaled = [sc.scale(s.values) for sc, s in zip(self.scalers, series)]

    @classmethod
    def for_future(
        cls, series: list[Series], data: ForecastDataConfig, scalers: dict[str, Scaler]
    ) -> Prepared:
        """Series to forecast past their end: nothing held out; a series without a stored
        scaler gets one fitted on all of its history (there is no future to leak)."""
        prep = cls.__new__(cls)
        prep.series, prep.data, prep.bounds = series, resolve_season(data, series)[0], []
        prep.scalers = [
            scalers.get(s.id) or Scaler.fit(s.values, data.transform, f"series {s.id!r}")
            for s in series
        ]
        prep.scaled = [sc.scale(s.values) for sc, s in zip(prep.scalers, series)]
        return prep

    def picks(self, part: str, stride: int = 1) -> list[tuple[int, int]]:
        d = self.data
        return [
            (i, o)
            for i, b in enumerate(self.bounds)
            for o in origins(b, part, d.lookback, d.horizon, stride)
        ]

    def windows(self, picks: list[tuple[int, int]]) -> Windows:
        d = self.data
        return cut_windows(
            self.scaled, picks, d.lookback, d.horizon, reference=d.reference, season=d.season
        )


def model_inputs(w: Windows, mode: str) -> tuple[Tensor, Tensor]:
    """Tensors for the loss: direct ``x (N, L, F), y (N, H)``; autoregressive one-step-ahead
    pairs along the whole window, ``x (N, L+H-1, 1), y (N, L+H-1)``."""
    if mode == "direct":
        return torch.tensor(w.x, dtype=torch.float32), torch.tensor(w.y, dtype=torch.float32)
    seq = np.concatenate([w.x[:, :, 0], w.y], axis=1)  # (N, L+H)
    x = torch.tensor(seq[:, :-1, None], dtype=torch.float32)
    return x, torch.tensor(seq[:, 1:], dtype=torch.float32)


def predictions(model: nn.Module, x: Tensor, mode: str) -> Tensor:
    """What the loss compares with the targets: direct ``(N, H, Q)``, autoregressive
    ``(N, L+H-1, Q)``."""
    out, _ = model(x)  # (N, T, horizon, Q)
    return out[:, -1] if mode == "direct" else out[:, :, 0]


def point_index(data: ForecastDataConfig) -> int:
    """Which output is the point forecast: the median with quantiles, else the only one."""
    return data.quantile_list.index(0.5) if data.quantile_list else 0


def forecast_raw(
    model: Forecaster | ForecasterEnsemble,
    prep: Prepared,
    picks: list[tuple[int, int]],
    device: torch.device,
) -> np.ndarray:
    """Forecasts in the data's own units at ``picks``: (N, horizon, Q)."""
    d = prep.data
    w = prep.windows(picks)
    x = torch.tensor(w.x, dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        if d.mode == "direct":
            z = model(x)[0][:, -1]
        else:
            z = model.rollout(x, d.horizon, point_index(d))
    model.train(was_training)
    z = z.float().cpu().numpy() + w.ref[:, :, None]
    return np.stack([prep.scalers[s].unscale_target(z[i]) for i, s in enumerate(w.series)]).astype(
        np.float64
    )


def build_forecaster(n_inputs: int, data: ForecastDataConfig, cfg: ForecastModelConfig):
    kw = dict(
        outputs=max(1, len(data.quantile_list)),
        cell=cfg.cell,
        layer_options=layer_options(cfg),
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
    )
    horizon = data.horizon if data.mode == "direct" else 1
    if cfg.members > 1:
        return ForecasterEnsemble(n_inputs, horizon, members=cfg.members, **kw)
    return Forecaster(n_inputs, horizon, **kw)


class ForecastTask(Task):
    """The ``forecast`` task for the trainer (see ``rnnkit.training.task.Task``)."""

    kind = "forecast"
    unit = "windows"

    @property
    def loss_label(self) -> str:
        """The loss as ``loss`` computes it, on the standardised series."""
        what = "mean squared error" if self.quantiles is None else "pinball loss"
        return f"{what} (standardised)"

    def __init__(
        self,
        model_cfg: ForecastModelConfig,
        data_cfg: ForecastDataConfig,
        series: list[Series],
        *,
        batch_size: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.batch_size, self.seed = batch_size, seed
        self.device = torch.device(device)
        self.prep = Prepared(series, data_cfg)
        # the season as inferred, if it was: config.json stores it for evaluate and predict
        self.model_cfg, self.data_cfg = model_cfg, self.prep.data
        data_cfg = self.data_cfg
        fit_part = "train+val" if data_cfg.refit else "train"
        self.train_x, self.train_y = model_inputs(
            self.prep.windows(self.prep.picks(fit_part)), data_cfg.mode
        )
        self.val_x, self.val_y = model_inputs(
            self.prep.windows(self.prep.picks("val")), data_cfg.mode
        )
        qs = data_cfg.quantile_list
        self.quantiles = torch.tensor(qs, device=self.device) if qs else None

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        if self.quantiles is None:
            return torch.mean((pred[..., 0] - y) ** 2)
        return pinball_loss(pred, y, self.quantiles)

    # -- the Task -------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return build_forecaster(self.train_x.shape[-1], self.data_cfg, self.model_cfg)

    def train_batch(self, step: int) -> tuple[Tensor, Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        idx = torch.randint(0, len(self.train_x), (self.batch_size,), generator=gen)
        idx = idx[self._rank :: self._world_size]  # this rank's share (data-parallel training)
        return self.train_x[idx], self.train_y[idx]

    _rank, _world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        self._rank, self._world_size = rank, world_size

    def batch_loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, int]:
        x, y = (t.to(self.device) for t in batch)
        if isinstance(getattr(model, "module", None), ForecasterEnsemble):
            # each member's own loss needs calls that bypass DistributedDataParallel's forward
            raise ValueError("--members > 1 cannot train in several processes (torchrun) yet")
        if isinstance(model, ForecasterEnsemble):  # each member learns on its own loss
            outs = model.member_outputs(x)
            direct = self.data_cfg.mode == "direct"
            losses = [self.loss((o[:, -1] if direct else o[:, :, 0]).float(), y) for o in outs]
            return torch.stack(losses).mean(), len(x)
        return self.loss(predictions(model, x, self.data_cfg.mode).float(), y), len(x)

    def evaluate(self, model: nn.Module, split: str, limit: int | None = None) -> dict:
        x, y = (self.val_x, self.val_y) if split == "val" else (self.train_x, self.train_y)
        pred = predictions(model, x.to(self.device), self.data_cfg.mode).float()
        return {"loss": self.loss(pred, y.to(self.device)).item(), "windows": len(x)}

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": asdict(self.model_cfg),
            "data": asdict(self.data_cfg),
            "inputs": int(self.train_x.shape[-1]),
            "scalers": {s.id: sc.to_json() for s, sc in zip(self.prep.series, self.prep.scalers)},
            "batch_size": self.batch_size,
        }
