"""Cutting series into train/val/test parts, scaling them, and slicing windows, without look-ahead.

Every series is split by time: its last ``test_size`` points are the test tail, the
``val_size`` points before them the validation part, and the rest the training part. The scaler
is fitted on the training part only, per series and per column, so nothing from the future moves
the numbers a model sees. A window is ``lookback`` inputs ending at an *origin* and the
``horizon`` target values after it; a window belongs to a part when all its targets lie in it
(its inputs may reach back into earlier parts, as they would when forecasting for real).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rnnkit.series.table import Series, SeriesError

TransformName = Literal["none", "log", "sqrt"]
ReferenceName = Literal["none", "last", "seasonal"]
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Bounds:
    """Where one series' parts start: train is ``[0, val_start)``, val ``[val_start,
    test_start)``, test ``[test_start, length)``."""

    length: int
    val_start: int
    test_start: int

    def part(self, name: str) -> tuple[int, int]:
        """The ``[start, end)`` of a part, by name."""
        return {
            "train": (0, self.val_start),
            "val": (self.val_start, self.test_start),
            "test": (self.test_start, self.length),
        }[name]


def split_bounds(
    length: int, *, lookback: int, horizon: int, val_size: int, test_size: int, where: str
) -> Bounds:
    """The parts of a series of ``length`` points; an error when the training part is too short
    for even one window."""
    need = lookback + horizon + val_size + test_size
    if length < need:
        raise SeriesError(
            f"{where}: {length} points is too short: lookback + horizon ({lookback} + {horizon}) "
            f"for one training window, plus --val-size {val_size} and --test-size {test_size}, "
            f"need {need}; lower --lookback or --horizon or the held-out sizes"
        )
    test_start = length - test_size
    return Bounds(length, test_start - val_size, test_start)


@dataclass
class Scaler:
    """Per-column standardisation, after an optional log or square root, fitted on a series'
    training part."""

    mean: np.ndarray
    """(F,) column means on the training part (after the transform)."""
    std: np.ndarray
    """(F,) column standard deviations (1 where a column is constant)."""
    transform: TransformName = "none"
    """``log`` takes the natural log first (for positive, multiplicative series); ``sqrt`` the
    square root (for non-negative counts whose spread grows with their level, e.g. sunspots)."""

    @classmethod
    def fit(cls, train: np.ndarray, transform: TransformName = "none", where: str = "") -> Scaler:
        """Fit on ``train`` (T, F): the training part only, never anything after it."""
        z = forward_transform(train, transform, where)
        std = z.std(axis=0)
        return cls(z.mean(axis=0), np.where(std > 1e-12, std, 1.0), transform)

    def scale(self, values: np.ndarray) -> np.ndarray:
        """(T, F) raw values -> scaled values."""
        return (forward_transform(values, self.transform) - self.mean) / self.std

    def unscale_target(self, z: np.ndarray) -> np.ndarray:
        """Scaled target values (any shape) -> raw target values."""
        x = z * self.std[0] + self.mean[0]
        if self.transform == "log":
            return np.exp(x)
        if self.transform == "sqrt":
            return np.square(np.maximum(x, 0.0))  # a forecast root below 0 means a count of 0
        return x

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "transform": self.transform}

    @classmethod
    def from_json(cls, d: dict) -> Scaler:
        return cls(np.array(d["mean"]), np.array(d["std"]), d["transform"])


def forward_transform(values: np.ndarray, transform: str, where: str = "") -> np.ndarray:
    if transform == "none":
        return np.asarray(values, dtype=np.float64)
    if transform == "log":
        if (values <= 0).any():
            raise SeriesError(
                f"{where or 'the data'}: --transform log needs positive values, found "
                f"{float(values.min())}; use --transform none"
            )
        return np.log(values)
    if transform == "sqrt":
        if (values < 0).any():
            raise SeriesError(
                f"{where or 'the data'}: --transform sqrt needs values >= 0, found "
                f"{float(values.min())}; use --transform none"
            )
        return np.sqrt(values)
    raise SeriesError(f"--transform must be none, log or sqrt, got {transform!r}")


@dataclass
class Windows:
    """Windows cut from scaled series, ready for a model."""

    x: np.ndarray
    """(N, lookback, F) scaled inputs (the target column less the last input target, unless
    the reference is ``none``)."""
    y: np.ndarray
    """(N, horizon) scaled targets, on the same footing as ``x``."""
    ref: np.ndarray
    """(N, horizon) what was subtracted from each target (0 for reference ``none``)."""
    series: np.ndarray
    """(N,) index of the series each window came from."""
    origin: np.ndarray
    """(N,) index in its series of the first forecast point."""


def origins(bounds: Bounds, part: str, lookback: int, horizon: int, stride: int = 1) -> range:
    """Origins whose ``horizon`` targets all lie in ``part`` (``train+val``: in either) and whose
    inputs exist."""
    start, end = (0, bounds.test_start) if part == "train+val" else bounds.part(part)
    return range(max(start, lookback), end - horizon + 1, stride)


def cut_windows(
    scaled: Sequence[np.ndarray],
    picks: Sequence[tuple[int, int]],
    lookback: int,
    horizon: int,
    *,
    reference: ReferenceName = "none",
    season: int = 1,
) -> Windows:
    """Windows at ``picks`` (series index, origin) of scaled series ``(T, F)``.

    ``reference`` says what the targets are taken relative to, using the inputs only:

    - ``none``: nothing; the network forecasts scaled values;
    - ``last``: the last input target value (the inputs' target column too): the network sees the
      window's shape, not its level, which lets it extrapolate a trend past the training range;
    - ``seasonal``: as ``last`` for the inputs, but each target less the seasonal naive forecast
      for its step, so the network learns a correction to that baseline (needs
      ``lookback >= season``).

    Future targets of a forecast origin need not exist (they are NaN) for forecasting.
    """
    n, f = len(picks), scaled[0].shape[1]
    if reference == "seasonal" and lookback < season:
        raise SeriesError(f"--reference seasonal needs --lookback >= --season ({season})")
    x = np.empty((n, lookback, f))
    y = np.full((n, horizon), np.nan)
    ref = np.zeros((n, horizon))
    steps = np.arange(horizon)
    for i, (s, o) in enumerate(picks):
        z = scaled[s]
        x[i] = z[o - lookback : o]
        tail = z[o : o + horizon, 0]
        y[i, : len(tail)] = tail
        if reference == "none":
            continue
        last = x[i, -1, 0]
        x[i, :, 0] -= last
        if reference == "seasonal":
            ref[i] = z[o - season + steps % season, 0]
        else:
            ref[i] = last
        y[i] -= ref[i]
    series = np.array([s for s, _ in picks], dtype=np.int64)
    origin = np.array([o for _, o in picks], dtype=np.int64)
    return Windows(x, y, ref, series, origin)


def fit_scalers(
    series: Sequence[Series],
    bounds: Sequence[Bounds],
    transform: TransformName,
    *,
    with_val: bool = False,
) -> list[Scaler]:
    """One scaler per series, fitted on its training part (``with_val``: on its training and
    validation parts, for a refitted run)."""
    scalers = []
    for s, b in zip(series, bounds):
        where = f"series {s.id!r}"
        end = b.test_start if with_val else b.val_start
        scalers.append(Scaler.fit(s.values[:end], transform, where))
        forward_transform(s.values, transform, where)  # a clear error for a later bad value
    return scalers
