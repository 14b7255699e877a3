"""Forecast error measures: MAE, RMSE, MAPE, MASE, interval coverage, directional accuracy.

Inputs are arrays of the same shape (origins x horizon steps, or flat). MASE divides the mean
absolute error by the in-sample mean absolute error of the seasonal naive forecast on the data
before the held-out tail (Hyndman & Koehler 2006, section 3.4): below 1 beats that naive method
on its own training data.
"""

from __future__ import annotations

import numpy as np


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - forecast)))


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(np.mean((actual - forecast) ** 2)))


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute percentage error, in percent; NaN when an actual value is 0."""
    if (actual == 0).any():
        return float("nan")
    return float(100 * np.mean(np.abs((actual - forecast) / actual)))


def mase_scale(history: np.ndarray, season: int = 1) -> float:
    """In-sample mean absolute error of the seasonal naive forecast (``season`` 1: naive)."""
    if len(history) <= season:
        raise ValueError(
            f"MASE needs more than {season} points before the tail, got {len(history)}"
        )
    scale = float(np.mean(np.abs(history[season:] - history[:-season])))
    return scale if scale > 0 else float("nan")


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actual values inside ``[lower, upper]``."""
    return float(np.mean((actual >= lower) & (actual <= upper)))


def directional_accuracy(last: np.ndarray, actual: np.ndarray, forecast: np.ndarray) -> float:
    """Share of forecasts that get the sign of the change from ``last`` right (zero changes of
    the actual are left out)."""
    move = np.sign(actual - last)
    keep = move != 0
    return float(np.mean(np.sign(forecast - last)[keep] == move[keep])) if keep.any() else 0.0


def point_metrics(actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, MAPE and MASE; ``scale`` is each value's MASE denominator (its series')."""
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    return {
        "mae": mae(a, f),
        "rmse": rmse(a, f),
        "mape": mape(a, f),
        "mase": float(np.mean(np.abs(a - f) / scale)),
    }
