"""What the timestamps of a series say: its frequency, the season that goes with it, and the
dates of the steps after its end.

Calendar frequencies (monthly, quarterly, yearly) are recognised by whole calendar months
between rows, not by a number of days, and their future dates are counted in calendar months
(``2025-01-31, 2025-02-28, 2025-03-31``); other frequencies step by the median gap, and a
series of weekdays only (trading days) skips weekends.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

SEASONS = {
    "hourly": 24,
    "daily": 7,
    "business daily": 5,
    "weekly": 52,
    "monthly": 12,
    "quarterly": 4,
    "yearly": 1,
}
"""The season a frequency implies: a day of hours, a week of days (of five weekdays), a year
of weeks, months or quarters."""

_MONTHS = {1: "monthly", 3: "quarterly", 12: "yearly"}
_SECONDS = {3600: "hourly", 86400: "daily", 7 * 86400: "weekly"}


def _weekday(days: np.ndarray) -> np.ndarray:
    return (days.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday


def infer_frequency(times: np.ndarray) -> str | None:
    """``"hourly"``, ``"daily"``, ``"business daily"``, ``"weekly"``, ``"monthly"``,
    ``"quarterly"``, ``"yearly"`` or None (numbers, too few points, or another spacing), from
    the median gap between timestamps."""
    if not np.issubdtype(times.dtype, np.datetime64) or len(times) < 2:
        return None
    months = np.diff(times.astype("datetime64[M]").astype(np.int64))
    seconds = np.diff(times.astype("datetime64[s]").astype(np.int64))
    gap = float(np.median(seconds))
    step = int(np.median(months))
    # a calendar month is 28-31 days: a whole number of months apart, by both measures
    if step in _MONTHS and 28 * step <= gap / 86400 <= 31 * step + 1:
        return _MONTHS[step]
    name = _SECONDS.get(int(gap)) if gap.is_integer() else None
    if name == "daily" and len(times) >= 6 and (_weekday(times) < 5).all():
        return "business daily"  # weekdays only, weekends skipped: a trading calendar
    return name


def infer_season(series_times: list[np.ndarray]) -> tuple[int, str]:
    """The season of a data set from its timestamps (see ``SEASONS``; 1 when they say
    nothing), and a note saying how it was chosen; the most common season when the series of a
    file differ."""
    found = [infer_frequency(t) for t in series_times]
    counts = Counter(found)
    frequency, _ = counts.most_common(1)[0]
    season = SEASONS.get(frequency, 1) if frequency else 1
    if frequency is None:
        note = "the timestamps show no calendar frequency"
    else:
        note = f"{frequency} timestamps"
    if len(counts) > 1:
        shown = ", ".join(f"{n} {f or 'other'}" for f, n in counts.most_common())
        note += f"; the series differ ({shown})"
    return season, note


def _add_months(t: np.datetime64, k: np.ndarray, month_end: bool) -> np.ndarray:
    """``t`` moved on by ``k`` calendar months: the same day of the month (the last day where
    the month is shorter, or always with ``month_end``) and the same time of day."""
    unit = np.datetime_data(t.dtype)[0]
    month = t.astype("datetime64[M]")
    day = t.astype("datetime64[D]")
    time_of_day = t - day.astype(t.dtype)
    day_index = (day - month.astype("datetime64[D]")).astype(np.int64)
    target = month + k  # (horizon,) months
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(
        np.int64
    )
    index = length - 1 if month_end else np.minimum(day_index, length - 1)
    out = target.astype("datetime64[D]") + index
    return out.astype(f"datetime64[{unit}]") + time_of_day


def future_times(times: np.ndarray, horizon: int) -> np.ndarray:
    """The next ``horizon`` timestamps after ``times``: by calendar months for a monthly,
    quarterly or yearly series, over weekdays for a business-daily one, else one median gap
    apart (numbers: years, indices)."""
    steps = np.arange(1, horizon + 1)
    if len(times) < 2:
        return times[-1] + steps if len(times) else steps
    frequency = infer_frequency(times)
    last = times[-1]
    if frequency in ("monthly", "quarterly", "yearly"):
        months = {"monthly": 1, "quarterly": 3, "yearly": 12}[frequency]
        days = times.astype("datetime64[D]")
        # month-end data (2024-01-31, 2024-02-29, ...) stays at month ends
        month_end = bool(((days + 1).astype("datetime64[M]") != days.astype("datetime64[M]")).all())
        return _add_months(last, steps * months, month_end)
    if frequency == "business daily":
        day = last.astype("datetime64[D]")
        out = np.busday_offset(day, steps, roll="forward")
        return out.astype(times.dtype) + (last - day.astype(times.dtype))
    step = np.median(np.diff(times))
    if np.issubdtype(times.dtype, np.datetime64):
        step = np.timedelta64(int(step.astype(np.int64)), np.datetime_data(times.dtype)[0])
    return last + step * steps
