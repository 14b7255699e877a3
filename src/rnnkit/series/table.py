"""Reading ordered numbers from a CSV file: one or several series, checked before anything learns.

The reader uses the standard library's ``csv`` module (pandas is not a dependency). A file holds a
time column, a target column, optional feature columns and optionally a series-id column; a
``.gz`` file is read through gzip. Bad input is refused with a message that names the file, the
column and the line, unless the user opts in to a documented repair:

- a missing value (empty cell, ``NA``, ``NaN``, ``null``): an error, or ``fill="linear"``
  (linear interpolation between the neighbours, the nearest value at either end) or
  ``fill="previous"`` (carry the last seen value forward; the first value back at the start);
- timestamps out of order: an error, or ``sort=True`` (a stable sort by time, per series);
- a repeated timestamp within a series: always an error (no repair can know which row is right);
- a cell that is not a number: always an error.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from rnnkit.datasets.tables import CSV_FIELD_LIMIT
from rnnkit.series.iso8601 import parse_iso8601, read_iso_column

FillName = Literal["none", "linear", "previous"]
LARGEST = 1e150
"""The largest magnitude read: scaling squares the values, and 1e150 squared is still finite."""
MISSING = {"", "na", "nan", "null", "none", "n/a", "-"}
# Date formats tried in order; the first that reads every timestamp wins. The unit says what one
# step of the calendar is, so that future timestamps can be counted on from the last one.
DATE_FORMATS: tuple[tuple[str, str], ...] = (
    ("%Y-%m-%d", "D"),
    ("%Y-%m", "M"),
    ("%Y-%m-%d %H:%M:%S", "s"),
    ("%Y-%m-%dT%H:%M:%S", "s"),
    ("%Y-%m-%d %H:%M", "m"),
    ("%m/%d/%Y", "D"),
    ("%Y/%m/%d", "D"),
    ("%d.%m.%Y", "D"),
)


class SeriesError(ValueError):
    """The series data is unusable as given; the message names the file, column and line."""


@dataclass
class Series:
    """One series: its id, its timestamps and its values, target first."""

    id: str
    """The series-id column's value (or the file name when there is one series)."""
    times: np.ndarray
    """(T,) float timestamps, or numpy datetime64 ones; strictly increasing."""
    values: np.ndarray
    """(T, F) float64: column 0 is the target, the rest are the features."""
    lines: np.ndarray
    """(T,) the file line each row came from, for error messages."""

    def __len__(self) -> int:
        return len(self.values)

    @property
    def target(self) -> np.ndarray:
        return self.values[:, 0]

    def head(self, n: int) -> Series:
        """The first ``n`` points (a negative ``n`` drops that many from the end)."""
        return Series(self.id, self.times[:n], self.values[:n], self.lines[:n])


def _open_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SeriesError(f"{path}: no such file") from None
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SeriesError(f"{path}: not UTF-8 text ({e})") from None


def parse_times(
    cells: Sequence[str], lines: Sequence[int], where: str, time_format: str | None = None
) -> np.ndarray:
    """Timestamps as dates in ``time_format`` (a ``strptime`` format) when it is given; else as
    floats when every cell is a number, else as numpy datetime64 in the first of
    ``DATE_FORMATS`` that reads every cell, else as ISO 8601 timestamps of any form
    (``rnnkit.series.iso8601``: ``Z``, UTC offsets, fractional seconds, week dates), those with
    an offset converted to UTC."""
    if time_format:
        timed = any(code in time_format for code in ("%H", "%M", "%S", "%I"))
        formats: Sequence[tuple[str, str]] = [(time_format, "s" if timed else "D")]
    else:
        try:
            return np.array([float(c) for c in cells])
        except ValueError:
            formats = DATE_FORMATS
    mismatch = ""  # a later row that the first row's format does not read
    for fmt, unit in formats:
        try:
            datetime.strptime(cells[0].strip(), fmt)
        except ValueError:
            if time_format:
                raise SeriesError(
                    f"{where}, line {lines[0]}: timestamp {cells[0]!r} does not match "
                    f"--time-format {time_format!r}"
                ) from None
            continue
        out = []
        for cell, line in zip(cells, lines):
            try:
                out.append(np.datetime64(datetime.strptime(cell.strip(), fmt), unit))
            except ValueError:
                mismatch = (
                    f"{where}, line {line}: timestamp {cell!r} does not match the format "
                    f"{fmt!r} of the first row"
                )
                break
        else:
            return np.array(out)
        if time_format:
            raise SeriesError(mismatch)
        break
    # ISO 8601 in full: "2024-03-05T10:00:00Z", "+01:00" offsets, fractional seconds
    iso, why = read_iso_column(cells, lines, where)
    if iso is not None:
        return iso
    if mismatch:
        raise SeriesError(f"{mismatch} (nor are the timestamps ISO 8601: {why})")
    if _is_iso8601(cells[0]):  # a column that starts as ISO 8601: name the row that is not
        raise SeriesError(why)
    known = ", ".join(f for f, _ in DATE_FORMATS)
    raise SeriesError(
        f"{where}, line {lines[0]}: cannot read the timestamp {cells[0]!r}: give numbers (years, "
        f"indices), ISO 8601 timestamps (2024-03-05T10:00:00Z) or dates in one of these "
        f"formats: {known}"
    )


def _is_iso8601(cell: str) -> bool:
    try:
        parse_iso8601(cell)
    except ValueError:
        return False
    return True


def read_series_csv(
    path: str | Path,
    *,
    time_col: str,
    target: str,
    features: Sequence[str] = (),
    series_col: str | None = None,
    fill: FillName = "none",
    sort: bool = False,
    time_format: str | None = None,
) -> list[Series]:
    """Read, check and (when asked) repair the series in a CSV file.

    Args:
        path: the CSV file (``.csv`` or ``.csv.gz``) with a header row.
        time_col: the column of timestamps (numbers or dates, see ``DATE_FORMATS``).
        time_format: a ``strptime`` format for the timestamps (e.g. ``%Y%m%d``), for dates
            that would otherwise read as numbers or in no known format.
        target: the column to forecast.
        features: more numeric input columns.
        series_col: a column whose value says which series a row belongs to.
        fill: what to do with missing values: ``none`` (an error), ``linear`` or ``previous``.
        sort: sort each series by time instead of refusing timestamps out of order.

    Returns:
        The series, in order of first appearance in the file.

    Raises:
        SeriesError: a missing column, a non-numeric cell, a missing value without ``fill``,
            unsorted timestamps without ``sort``, or a repeated timestamp.
    """
    path = Path(path)
    if fill not in ("none", "linear", "previous"):
        raise SeriesError(f"--fill must be none, linear or previous; got {fill!r}")
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(_open_text(path)))
    header = next(reader, None)
    if not header:
        raise SeriesError(f"{path}: the file is empty (a header row is needed)")
    header = [h.strip() for h in header]
    columns = [time_col, target, *features] + ([series_col] if series_col else [])
    for name in columns:
        if name not in header:
            raise SeriesError(
                f"{path}: no column {name!r}; the header has: {', '.join(map(repr, header))}"
            )
    at = {name: header.index(name) for name in columns}
    value_cols = [target, *features]
    groups: dict[str, list[tuple[int, list[str]]]] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) < len(header):
            raise SeriesError(
                f"{path}, line {line}: {len(row)} cells, the header has {len(header)}"
            )
        key = row[at[series_col]].strip() if series_col else path.name
        groups.setdefault(key, []).append((line, row))
    if not groups:
        raise SeriesError(f"{path}: no data rows after the header")
    out = []
    for key, rows in groups.items():
        where = f"{path}" + (f" (series {key!r})" if series_col else "")
        lines = np.array([line for line, _ in rows])
        time_cells = [row[at[time_col]].strip() for _, row in rows]
        for cell, line in zip(time_cells, lines):
            if cell.lower() in MISSING:
                raise SeriesError(f"{where}, line {line}: column {time_col!r} has no timestamp")
        times = parse_times(time_cells, lines, f"{where}, column {time_col!r}", time_format)
        values = np.empty((len(rows), len(value_cols)))
        for j, name in enumerate(value_cols):
            values[:, j] = _numbers([row[at[name]] for _, row in rows], lines, where, name)
        times, values, lines = _order(times, values, lines, where, time_col, sort)
        for j, name in enumerate(value_cols):
            values[:, j] = _fill(values[:, j], lines, where, name, fill)
        out.append(Series(key, times, values, lines))
    return out


def _numbers(cells: list[str], lines: np.ndarray, where: str, column: str) -> np.ndarray:
    out = np.empty(len(cells))
    for i, (cell, line) in enumerate(zip(cells, lines)):
        text = cell.strip()
        if text.lower() in MISSING:
            out[i] = math.nan
            continue
        try:
            out[i] = float(text)
        except ValueError:
            raise SeriesError(
                f"{where}, line {line}, column {column!r}: {text!r} is not a number "
                "(only numeric columns can be targets or features)"
            ) from None
        if math.isinf(out[i]):
            raise SeriesError(f"{where}, line {line}, column {column!r}: {text!r} is infinite")
        if abs(out[i]) > LARGEST:
            raise SeriesError(
                f"{where}, line {line}, column {column!r}: {text!r} is too large to scale "
                f"(|x| > {LARGEST:.0e}: its square overflows); divide the column by a power of ten"
            )
    return out


def _order(times, values, lines, where: str, time_col: str, sort: bool):
    order = np.argsort(times, kind="stable")
    if not sort and (order != np.arange(len(times))).any():
        i = int(np.nonzero(times[1:] < times[:-1])[0][0]) + 1
        raise SeriesError(
            f"{where}: timestamps in column {time_col!r} are not in order: line {lines[i]} "
            f"({times[i]}) comes after line {lines[i - 1]} ({times[i - 1]}); sort the file, or "
            "pass --sort to sort each series by time"
        )
    times, values, lines = times[order], values[order], lines[order]
    repeated = np.nonzero(times[1:] == times[:-1])[0]
    if len(repeated):
        i = int(repeated[0]) + 1
        raise SeriesError(
            f"{where}: timestamp {times[i]} appears twice (lines {lines[i - 1]} and {lines[i]}) "
            f"and {len(repeated) - 1} more repeat(s); keep one row per timestamp (or give a "
            "--series-col if the file holds several series)"
        )
    return times, values, lines


def _fill(x: np.ndarray, lines: np.ndarray, where: str, column: str, fill: str) -> np.ndarray:
    missing = np.isnan(x)
    if not missing.any():
        return x
    if fill == "none" or missing.all():
        first = lines[int(np.argmax(missing))]
        hint = "the column has no value at all" if missing.all() else "pass --fill linear or "
        hint += "" if missing.all() else "--fill previous to fill the gaps"
        raise SeriesError(
            f"{where}, column {column!r}: {int(missing.sum())} missing value(s), the first at "
            f"line {first}; {hint}"
        )
    idx = np.arange(len(x))
    known = ~missing
    if fill == "linear":
        # np.interp holds the end values flat beyond the first and last known points
        return np.interp(idx, idx[known], x[known])
    last = np.maximum.accumulate(np.where(known, idx, -1))
    out = x[np.maximum(last, 0)].copy()
    lead = last < 0
    out[lead] = x[known][0]  # nothing before: take the first value seen
    return out
