"""Tables on disk: CSV, TSV and JSONL files (optionally ``.bz2``), read row by row.

``table_rows`` is the one reader of table files: the classifier's labelled readers
(``rnnkit.datasets.labelled_formats``) and the generation task's two columns (``columns_of``)
both go through it. Every problem is a ``TableError`` that names the file and the line.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path


class TableError(ValueError):
    """A data file is missing, unreadable or malformed; the message names the file and line."""


def open_text(path: Path):
    """A UTF-8 text stream of ``path``, decompressed if it ends in ``.bz2``."""
    opener = bz2.open if path.suffix == ".bz2" else open
    try:
        return io.TextIOWrapper(opener(path, "rb"), encoding="utf-8", newline="")
    except OSError as e:
        raise TableError(f"cannot read {path}: {e}") from e


def table_suffix(path: Path) -> str:
    """The format suffix of a file, under any ``.bz2``: ``.csv`` for ``reviews.csv.bz2``."""
    return Path(path.stem).suffix if path.suffix == ".bz2" else path.suffix


CSV_FIELD_LIMIT = 2**31 - 1
"""The longest CSV field read (the csv module's default, 128 KiB, refuses long texts)."""


def table_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a table: JSONL (``.jsonl``: one object a line), TSV (``.tsv``) or
    CSV (any other suffix), the last two with a header row; optionally ``.bz2``."""
    suffix = table_suffix(path)
    with open_text(path) as f:
        try:
            if suffix == ".jsonl":
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise TableError(f"{path}, line {number}: not JSON ({e})") from e
                    if not isinstance(row, dict):
                        raise TableError(f"{path}, line {number}: expected a JSON object")
                    yield number, row
            else:
                csv.field_size_limit(CSV_FIELD_LIMIT)
                reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
                if not reader.fieldnames:
                    raise TableError(f"{path} is empty (no header row)")
                for row in reader:
                    yield reader.line_num, row
        except UnicodeDecodeError as e:
            raise TableError(f"{path} is not UTF-8 text (a binary file?): {e}") from e


def columns_of(
    numbered: Iterable[tuple[int, dict]], wanted: Mapping[str, str], where: str
) -> list[tuple[str, ...]]:
    """The values, stripped, of some columns of every row of a table.

    Args:
        numbered: ``(line number, row)`` pairs (``table_rows`` of a file, or a row set's rows).
        wanted: ``{flag: column}``, the flag named in the error when the column is missing.
        where: the table's name in errors.

    Returns:
        One tuple a row, its values in the order of ``wanted``. A missing column, a short row,
        an empty value or a table without rows is a ``TableError``.
    """
    out = []
    for line, row in numbered:
        values = []
        for flag, col in wanted.items():
            if col not in row:
                columns = [c for c in row if c is not None]  # None: csv's key for extra fields
                raise TableError(f"{flag} {col!r}: no such column in {where}; columns: {columns}")
            value = row[col]
            if value is None:
                raise TableError(f"{where}, line {line}: the row has too few fields")
            if not str(value).strip():
                raise TableError(f"{where}, line {line}: the {col!r} value is empty")
            values.append(str(value).strip())
        out.append(tuple(values))
    if not out:
        raise TableError(f"{where}: no rows")
    return out
