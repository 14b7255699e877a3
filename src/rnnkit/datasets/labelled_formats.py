"""Readers of labelled sequences, one per file format, and the types they return.

Each reader takes a path and returns ``Labelled``; every problem is a ``LabelledDataError``
naming the file, the line or row and the fix. ``rnnkit.datasets.labelled.load_labelled`` picks
the reader for a source (or a registered set, ``rnnkit.datasets.classification_sets``, which
reads its files with these same readers): this module imports neither.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl")
TAG_SUFFIXES = (".conll", ".bio")

CSV_FIELD_LIMIT = 2**31 - 1
"""The longest CSV field read (the csv module's limit is a C long: 2**31 - 1 fits all)."""


class LabelledDataError(ValueError):
    """A labelled data file is missing, unreadable or malformed."""


@dataclass(kw_only=True)
class Columns:
    """Which columns of a table hold what (the CLI's ``--text-col`` and friends)."""

    text_col: str = "text"
    label_col: str = "label"
    sequence_col: str | None = None
    time_col: str | None = None
    feature_cols: tuple[str, ...] = ()


@dataclass
class Labelled:
    """Examples read from one source: inputs, labels, and what kind of input they are.

    ``inputs`` are strings (``kind="text"``), token lists (``"tokens"``, for tagging), or float32
    arrays ``(T, F)`` (``"numeric"`` and ``"audio"``). ``labels`` are strings, or lists of
    strings (one per step) when ``aligned``.
    """

    kind: str
    inputs: list
    labels: list
    aligned: bool = False
    source: str = ""
    given_splits: dict[str, list[int]] = field(default_factory=dict)
    """Indices of fixed splits when the source defines them (a registry set's train/test)."""

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, indices: list[int]) -> Labelled:
        return Labelled(
            self.kind,
            [self.inputs[i] for i in indices],
            [self.labels[i] for i in indices],
            self.aligned,
            self.source,
        )


def _open_text(path: Path):
    opener = bz2.open if path.suffix == ".bz2" else open
    try:
        return io.TextIOWrapper(opener(path, "rb"), encoding="utf-8", newline="")
    except OSError as e:
        raise LabelledDataError(f"cannot read {path}: {e}") from e


def table_suffix(path: Path) -> str:
    """The format suffix of a file, under any ``.bz2``: ``.csv`` for ``reviews.csv.bz2``."""
    return Path(path.stem).suffix if path.suffix == ".bz2" else path.suffix


def table_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a CSV/TSV/JSONL table (optionally .bz2)."""
    suffix = table_suffix(path)
    with _open_text(path) as f:
        try:
            if suffix == ".jsonl":
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise LabelledDataError(f"{path}, line {number}: not JSON ({e})") from e
                    if not isinstance(row, dict):
                        raise LabelledDataError(f"{path}, line {number}: expected a JSON object")
                    yield number, row
            else:
                csv.field_size_limit(CSV_FIELD_LIMIT)  # default 128 KiB: too short
                reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
                if not reader.fieldnames:
                    raise LabelledDataError(f"{path} is empty (no header row)")
                for row in reader:
                    yield reader.line_num, row
        except UnicodeDecodeError as e:
            raise LabelledDataError(f"{path} is not UTF-8 text (a binary file?): {e}") from e


def _need(path: Path, number: int, row: dict, col: str) -> object:
    if col not in row:
        raise LabelledDataError(
            f"{path}, line {number}: no column {col!r}; the columns are {sorted(row)} "
            "(choose with --text-col / --label-col)"
        )
    value = row[col]
    if value is None or (isinstance(value, str) and not value.strip()) or value == []:
        raise LabelledDataError(f"{path}, line {number}: column {col!r} is empty")
    return value


def read_table(path: Path, columns: Columns) -> Labelled:
    """Text (or token lists) and labels from a CSV/TSV/JSONL table."""
    inputs, labels, aligned = [], [], None
    for number, row in table_rows(path):
        text = _need(path, number, row, columns.text_col)
        label = _need(path, number, row, columns.label_col)
        row_aligned = isinstance(label, list)
        if aligned is None:
            aligned = row_aligned
        if row_aligned != aligned:
            raise LabelledDataError(f"{path}, line {number}: mixes per-step and whole labels")
        if row_aligned:
            if not isinstance(text, list) or len(text) != len(label):
                raise LabelledDataError(
                    f"{path}, line {number}: {columns.text_col!r} must be a list as long as "
                    f"{columns.label_col!r} ({len(label)} labels)"
                )
            inputs.append([str(t) for t in text])
            labels.append([str(t) for t in label])
        else:
            inputs.append(str(text))
            labels.append(str(label))
    if not inputs:
        raise LabelledDataError(f"{path} holds no examples")
    return Labelled("tokens" if aligned else "text", inputs, labels, bool(aligned), str(path))


def read_conll(path: Path, *, tagged: bool = True) -> Labelled:
    """``token<TAB>tag`` lines, sequences separated by blank lines. With ``tagged=False`` (input
    to tag) a line is a token, and anything after its first tab is ignored; the labels are
    empty lists."""
    inputs: list[list[str]] = [[]]
    labels: list[list[str]] = [[]]
    with _open_text(path) as f:
        try:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    if inputs[-1]:
                        inputs.append([])
                        labels.append([])
                    continue
                parts = line.split("\t")
                if not tagged:
                    inputs[-1].append(parts[0])
                    continue
                if len(parts) < 2 or not parts[-1].strip():
                    raise LabelledDataError(f"{path}, line {number}: expected token<TAB>tag")
                inputs[-1].append(parts[0])
                labels[-1].append(parts[-1].strip())
        except UnicodeDecodeError as e:
            raise LabelledDataError(f"{path} is not UTF-8 text: {e}") from e
    if not inputs[-1]:
        inputs.pop()
        labels.pop()
    if not inputs:
        raise LabelledDataError(f"{path} holds no examples")
    return Labelled("tokens", inputs, labels, True, str(path))


def _number(path: Path, number: int, col: str, value: object) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise LabelledDataError(
            f"{path}, line {number}: column {col!r} is not a number: {value!r}"
        ) from None
    if not math.isfinite(x):
        raise LabelledDataError(f"{path}, line {number}: column {col!r} is {value!r}")
    return x


def read_long(path: Path, columns: Columns, aligned: bool) -> Labelled:
    """Numeric sequences from a long table: one row per step, grouped by ``sequence_col``."""
    groups: dict[str, list[tuple[float, list[float], str, int]]] = {}
    features = list(columns.feature_cols)
    for number, row in table_rows(path):
        seq = str(_need(path, number, row, columns.sequence_col))  # type: ignore[arg-type]
        label = str(_need(path, number, row, columns.label_col))
        if not features:
            skip = {columns.sequence_col, columns.label_col, columns.time_col}
            features = [c for c in row if c not in skip]
            if not features:
                raise LabelledDataError(f"{path}: no feature columns besides the id and label")
        values = [_number(path, number, c, _need(path, number, row, c)) for c in features]
        order = (
            _number(path, number, columns.time_col, _need(path, number, row, columns.time_col))
            if columns.time_col
            else float(number)
        )
        groups.setdefault(seq, []).append((order, values, label, number))
    if not groups:
        raise LabelledDataError(f"{path} holds no rows")
    inputs, labels = [], []
    for seq, rows in groups.items():
        rows.sort(key=lambda r: r[0])
        inputs.append(np.asarray([r[1] for r in rows], dtype=np.float32))
        tags = [r[2] for r in rows]
        if aligned:
            labels.append(tags)
        else:
            if len(set(tags)) > 1:
                raise LabelledDataError(
                    f"{path}: sequence {seq!r} has several labels ({sorted(set(tags))[:5]}); "
                    "per-step labels need `rnnkit train tag`"
                )
            labels.append(tags[0])
    return Labelled("numeric", inputs, labels, aligned, str(path))


def read_npz(path: Path) -> Labelled:
    """Arrays ``x``, ``y`` and optionally ``lengths`` from an ``.npz`` file."""
    x, y, lengths = load_arrays(path, ("x", "y"), optional=("lengths",))
    if len(x) != len(y):
        raise LabelledDataError(f"{path}: x has {len(x)} sequences but y has {len(y)} labels")
    inputs = sequences(x, lengths, path)
    y = np.asarray(y, dtype=object)
    aligned = y.ndim == 2 or (len(y) > 0 and isinstance(y[0], (list, np.ndarray)))
    if aligned:
        labels = [[str(t) for t in list(row)[: len(inputs[i])]] for i, row in enumerate(y)]
    else:
        labels = [str(t) for t in y]
    return Labelled("numeric", inputs, labels, aligned, str(path))


def sequences(x: np.ndarray, lengths: np.ndarray | None, path: Path) -> list[np.ndarray]:
    """The float32 ``(T, F)`` sequences of a padded array ``x`` (``(N, T, F)``, or ``(N, T)``
    for one feature), each cut to its entry of ``lengths`` if given; an empty, misshapen or
    non-finite sequence is an error that names it."""
    out = []
    for i, seq in enumerate(x):
        seq = np.asarray(seq, dtype=np.float32)
        if seq.ndim == 1:
            seq = seq[:, None]
        if lengths is not None:
            seq = seq[: int(lengths[i])]
        if seq.ndim != 2 or len(seq) == 0:
            raise LabelledDataError(f"{path}: sequence {i} has shape {seq.shape}; want (T, F)")
        if not np.isfinite(seq).all():
            raise LabelledDataError(f"{path}: sequence {i} holds NaN or infinite values")
        out.append(seq)
    return out


def load_arrays(path: Path, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> list:
    """Named arrays of an ``.npz`` file (or the one array of an ``.npy``), without unpickling:
    a file from elsewhere cannot run code here, and a damaged one is an error that names it."""
    import pickle
    import zipfile

    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):  # .npy: one array
            return [data]
        missing = [n for n in names if n not in data.files]
        if missing:
            raise LabelledDataError(
                f"{path}: needs arrays {', '.join(names)}; it has {', '.join(data.files) or 'none'}"
            )
        return [data[n] for n in names] + [data[n] if n in data.files else None for n in optional]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise LabelledDataError(
                f"{path} holds Python objects (ragged arrays?); save x padded to (N, T, F) with "
                "an array 'lengths' instead"
            ) from e
        raise LabelledDataError(f"cannot read {path} as numpy arrays: {e}") from e
    except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise LabelledDataError(f"cannot read {path} as numpy arrays: {e}") from e


def read_ts(path: Path) -> Labelled:
    """The sktime/UEA ``.ts`` format: ``dim1 values:dim2 values:...:label`` per line."""
    inputs, labels = [], []
    in_data = False
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower() == "@data"
                continue
            *dims, label = line.split(":")
            try:
                arrays = [
                    np.array([float(v) for v in d.split(",")], dtype=np.float32) for d in dims
                ]
            except ValueError as e:
                raise LabelledDataError(f"{path}, line {number}: {e}") from e
            if not arrays or len({len(a) for a in arrays}) != 1:
                raise LabelledDataError(f"{path}, line {number}: dimensions differ in length")
            inputs.append(np.stack(arrays, axis=1))  # (T, F)
            labels.append(label.strip())
    if not inputs:
        raise LabelledDataError(f"{path}: no @data section or no series")
    return Labelled("numeric", inputs, labels, False, str(path))


def audio_files(path: Path) -> list[tuple[Path, str]]:
    """The WAV files of a folder with one sub-folder per class, and the class of each."""
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise LabelledDataError(f"{path}: no class sub-folders (expected CLASS/*.wav)")
    return [
        (file, folder.name)
        for folder in classes
        for file in sorted(folder.glob("*.wav")) + sorted(folder.glob("*.WAV"))
    ]


def read_audio_folder(path: Path, audio) -> Labelled:
    """A folder with one sub-folder of WAV files per class, as log-mel feature sequences."""
    from rnnkit.audio import log_mel, read_wav

    inputs, labels = [], []
    for file, label in audio_files(path):
        wave, rate = read_wav(file)
        inputs.append(log_mel(wave, rate, audio, name=str(file)).numpy())
        labels.append(label)
    if not inputs:
        raise LabelledDataError(f"{path}: no .wav files in its class sub-folders")
    return Labelled("audio", inputs, labels, False, str(path))
