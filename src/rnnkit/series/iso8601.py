"""ISO 8601 timestamps, read the same way on every Python version (``datetime.fromisoformat``
reads ``Z``, offsets without a colon, week dates and odd fraction lengths only from 3.11).

Accepted: calendar dates (``2024-03-05``, ``20240305``), week dates (``2024-W10-2``,
``2024W102``, ``2024-W10`` for its Monday), ordinal dates (``2024-065``), each optionally
followed by ``T`` (or a space) and a time ``hh``, ``hh:mm`` or ``hh:mm:ss`` (or ``hhmmss``), a
decimal fraction (``.`` or ``,``) on its last part, ``24:00`` for the end of the day, and a zone
``Z``, ``+hh``, ``+hh:mm`` or ``+hhmm``. A timestamp with a zone is converted to UTC; the zone
is then dropped, so that a column of them is one comparable, naive UTC clock. A column that
mixes timestamps with and without a zone is refused: the naive ones have no known offset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

import numpy as np

_DATE = re.compile(
    r"(?P<year>\d{4})(?:"
    r"(?P<sep>-?)(?P<month>\d{2})(?P=sep)(?P<day>\d{2})"  # calendar date
    r"|-?W(?P<week>\d{2})(?:-?(?P<weekday>[1-7]))?"  # week date
    r"|-?(?P<yday>\d{3})"  # ordinal date
    r")"
)
_TIME = re.compile(
    r"(?P<hour>\d{2})(?:(?P<tsep>:?)(?P<minute>\d{2})(?:(?P=tsep)(?P<second>\d{2}))?)?"
    r"(?:[.,](?P<fraction>\d+))?"
)
_ZONE = re.compile(r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)")


def parse_iso8601(text: str) -> tuple[datetime, bool, str]:
    """One ISO 8601 timestamp as a naive UTC (or zone-less) datetime, whether it had a zone,
    and its precision: ``"D"`` (a date), ``"s"`` (a time) or ``"us"`` (fractional seconds).

    Raises:
        ValueError: the text is not an ISO 8601 date or date and time.
    """
    text = text.strip()
    m = _DATE.match(text)
    if m is None:
        raise ValueError(f"not an ISO 8601 date: {text!r}")
    year = int(m["year"])
    try:
        if m["month"] is not None:
            day = date(year, int(m["month"]), int(m["day"]))
        elif m["week"] is not None:
            day = date.fromisocalendar(year, int(m["week"]), int(m["weekday"] or 1))
        else:
            day = date(year, 1, 1) + timedelta(days=int(m["yday"]) - 1)
            if day.year != year or int(m["yday"]) < 1:
                raise ValueError(f"day {m['yday']} of {year} does not exist")
    except ValueError as e:
        raise ValueError(f"no such date: {text!r} ({e})") from None
    rest = text[m.end() :]
    stamp = datetime(day.year, day.month, day.day)
    unit = "D"
    if rest[:1] in ("T", " ") and len(rest) > 1:
        t = _TIME.match(rest, 1)
        if t is None:
            raise ValueError(f"not an ISO 8601 time after the date: {text!r}")
        hour, minute, second = (int(t[k] or 0) for k in ("hour", "minute", "second"))
        if hour > 24 or minute > 59 or second > 60 or (hour == 24 and (minute or second)):
            raise ValueError(f"no such time of day: {text!r}")
        seconds = hour * 3600 + minute * 60 + min(second, 59)  # a leap second reads as :59
        if t["fraction"]:
            # the fraction belongs to the last part written: hours, minutes or seconds
            last = 1 if t["second"] else 60 if t["minute"] else 3600
            seconds += float("0." + t["fraction"]) * last
        stamp += timedelta(seconds=seconds)
        unit = "us" if stamp.microsecond else "s"
        rest = rest[t.end() :]
    zone = _ZONE.fullmatch(rest.strip()) if rest.strip() else None
    if rest.strip() and zone is None:
        raise ValueError(f"not an ISO 8601 timestamp (unread: {rest!r}): {text!r}")
    if zone is None:
        return stamp, False, unit
    z = zone["zone"]
    offset = timedelta(0)
    if z != "Z":
        digits = z[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        offset = -offset if z[0] == "-" else offset
    stamp = stamp.replace(tzinfo=timezone(offset)).astimezone(timezone.utc).replace(tzinfo=None)
    return stamp, True, "s" if unit == "D" else unit


def read_iso_column(
    cells: Sequence[str], lines: Sequence[int], where: str
) -> tuple[np.ndarray | None, str]:
    """A column of ISO 8601 timestamps as numpy datetime64 at the finest precision any cell
    has, or ``(None, why)`` when a cell is not ISO 8601 or zones are mixed (``why`` names the
    line)."""
    stamps, zoned, units = [], [], set()
    for cell, line in zip(cells, lines):
        try:
            stamp, has_zone, unit = parse_iso8601(cell)
        except ValueError as e:
            return None, f"{where}, line {line}: {e}"
        stamps.append(stamp)
        zoned.append(has_zone)
        units.add(unit)
    if any(zoned) and not all(zoned):
        i, j = zoned.index(True), zoned.index(False)
        return None, (
            f"{where}: line {lines[i]} ({cells[i]!r}) has a UTC offset but line {lines[j]} "
            f"({cells[j]!r}) has none; give every timestamp an offset (or Z), or none"
        )
    unit = "us" if "us" in units else "s" if "s" in units else "D"
    return np.array([np.datetime64(s, unit) for s in stamps]), ""
