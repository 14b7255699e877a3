"""The forecasts every result is shown beside: naive, seasonal naive, and exponential smoothing.

Each baseline forecasts ``horizon`` steps from an origin ``o`` using ``history[:o]`` only.

- naive: the last value, repeated (the random walk's forecast).
- seasonal naive: the value one season before each step, ``history[o - m + (h - 1) % m]``.
- ETS: Holt-Winters exponential smoothing from statsmodels (the ``forecast`` extra). The form
  (trend none/additive/damped, seasonality none/additive/multiplicative, with or without a
  Box-Cox transform) is chosen by the error on the validation part when fitted on the training
  part, the same information the network gets; the chosen form is then refitted on training plus
  validation. Forecasts from later origins run the fitted smoothing equations on over the newer
  data with the parameters and initial states fixed, which is how the fitted model would be used.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def naive(history: np.ndarray, origin: int, horizon: int) -> np.ndarray:
    """(horizon,) the last value before ``origin``."""
    return np.full(horizon, history[origin - 1], dtype=float)


def seasonal_naive(history: np.ndarray, origin: int, horizon: int, season: int) -> np.ndarray:
    """(horizon,) the value one season before each forecast step."""
    if season <= 1:
        return naive(history, origin, horizon)
    if origin < season:
        raise ValueError(
            f"seasonal naive from origin {origin} needs a full season ({season} steps) before it"
        )
    steps = np.arange(horizon)
    return history[origin - season + steps % season].astype(float)


def _statsmodels():
    try:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError as e:
        raise ImportError(
            "the exponential-smoothing baseline needs statsmodels: pip install 'rnnkit[forecast]'"
        ) from e
    return ExponentialSmoothing


@dataclass
class ETSBaseline:
    """A Holt-Winters model of one series, chosen and fitted as the module docstring says."""

    season: int
    form: dict = field(default_factory=dict)
    """The chosen trend/damped_trend/seasonal/use_boxcox."""
    params: dict = field(default_factory=dict)
    """Fitted smoothing parameters and initial states."""

    @classmethod
    def fit(
        cls, history: np.ndarray, val_start: int, test_start: int, horizon: int, season: int
    ) -> ETSBaseline:
        """Choose the form on ``[val_start, test_start)``, refit on ``history[:test_start]``."""
        best, best_err = None, np.inf
        for form in candidate_forms(history[:test_start], season):
            val_len = test_start - val_start
            try:
                fit = _fit(history[:val_start], form, season)
                err = float(np.mean(np.abs(fit.forecast(val_len) - history[val_start:test_start])))
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(err) and err < best_err:
                best, best_err = form, err
        if best is None:
            raise ValueError("no exponential-smoothing form could be fitted to this series")
        fit = _fit(history[:test_start], best, season)
        p = fit.params
        params = {
            "smoothing_level": float(p["smoothing_level"]),
            "initial_level": float(p["initial_level"]),
        }
        if best["trend"]:
            params["smoothing_trend"] = float(p["smoothing_trend"])
            params["initial_trend"] = float(p["initial_trend"])
        if best["damped_trend"]:
            params["damping_trend"] = float(p["damping_trend"])
        if best["seasonal"]:
            params["smoothing_seasonal"] = float(p["smoothing_seasonal"])
            params["initial_seasonal"] = [float(v) for v in p["initial_seasons"]]
        if best["use_boxcox"]:
            params["lamda"] = float(p["lamda"])
        return cls(season, best, params)

    def forecast(self, history: np.ndarray, origin: int, horizon: int) -> np.ndarray:
        """(horizon,) the fitted model run over ``history[:origin]``, then forecast."""
        ExponentialSmoothing = _statsmodels()
        p = self.params
        init = {k: p[k] for k in ("initial_level", "initial_trend", "initial_seasonal") if k in p}
        model = ExponentialSmoothing(
            history[:origin],
            trend=self.form["trend"],
            damped_trend=self.form["damped_trend"],
            seasonal=self.form["seasonal"],
            seasonal_periods=self.season if self.form["seasonal"] else None,
            use_boxcox=p.get("lamda", False),
            initialization_method="known",
            **init,
        )
        smooth = {
            k: p[k]
            for k in ("smoothing_level", "smoothing_trend", "smoothing_seasonal", "damping_trend")
            if k in p
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(model.fit(optimized=False, **smooth).forecast(horizon), dtype=float)

    def describe(self) -> str:
        f = self.form
        trend = "none" if not f["trend"] else ("damped" if f["damped_trend"] else "additive")
        seas = {None: "none", "add": "additive", "mul": "multiplicative"}[f["seasonal"]]
        box = ", Box-Cox" if f["use_boxcox"] else ""
        return f"trend {trend}, seasonality {seas}{box}"


def candidate_forms(history: np.ndarray, season: int) -> list[dict]:
    positive = bool((history > 0).all())
    seasonals: Sequence[str | None] = [None]
    if season > 1 and len(history) >= 2 * season + 2:
        seasonals = [None, "add", "mul"] if positive else [None, "add"]
    forms = []
    for trend, damped in ((None, False), ("add", False), ("add", True)):
        for seasonal in seasonals:
            for boxcox in (False, True) if positive else (False,):
                forms.append(
                    {"trend": trend, "damped_trend": damped, "seasonal": seasonal,
                     "use_boxcox": boxcox}
                )  # fmt: skip
    return forms


def _fit(y: np.ndarray, form: dict, season: int):
    ExponentialSmoothing = _statsmodels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(
            y,
            trend=form["trend"],
            damped_trend=form["damped_trend"],
            seasonal=form["seasonal"],
            seasonal_periods=season if form["seasonal"] else None,
            use_boxcox=form["use_boxcox"],
            initialization_method="estimated",
        )
        return model.fit()


def blend_weights(
    forecast: np.ndarray, baseline: np.ndarray, actual: np.ndarray, grid: int = 21
) -> np.ndarray:
    """(H,) per horizon step, the weight ``w`` on ``forecast`` (and ``1 - w`` on ``baseline``)
    among ``grid`` evenly spaced values in [0, 1] with the lowest mean absolute error over the
    rows (origins) of ``actual``; ties go to the smaller weight. A combination of forecasts whose
    errors differ often beats both (Bates & Granger 1969); the weights are fitted on a part that
    is not scored."""
    ws = np.arange(grid) / (grid - 1)  # 0.95, not 0.9500000000000001
    mixed = ws[:, None, None] * forecast + (1 - ws[:, None, None]) * baseline  # (grid, N, H)
    err = np.abs(mixed - actual).mean(axis=1)  # (grid, H)
    return ws[np.argmin(err, axis=0)]
