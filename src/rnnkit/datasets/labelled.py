"""Labelled sequences from the user's files: text, numbers or audio, one label per sequence or
one per step.

``load_labelled(source, columns)`` reads any of:

- ``.csv`` / ``.tsv`` / ``.jsonl`` with a text column and a label column (one example a row);
  with ``columns.sequence_col`` set, a *long* numeric table instead: one row per time step, rows
  of one sequence sharing an id, the feature columns numeric (``columns.feature_cols``, default:
  every other column), ordered by ``columns.time_col`` if given, else as written;
- ``.jsonl`` with list-valued columns for aligned tagging (``{"tokens": [...], "tags": [...]}``);
- ``.conll`` / ``.bio``: ``token<TAB>tag`` lines, a blank line between sequences (tagging);
- ``.npz``: arrays ``x`` (``(N, T, F)``, padded), ``y`` (``(N,)`` labels, or ``(N, T)`` for
  tagging) and optionally ``lengths`` (``(N,)``); read without unpickling;
- ``.ts``: the sktime/UEA time-series format (multivariate, unequal lengths, class labels);
- a folder with one sub-folder of ``.wav`` files per class (audio; see ``rnnkit.audio``);
- a registered data-set name (``rotten-tomatoes``, ``japanese-vowels``), which also fixes its
  split.

Every problem is a ``LabelledDataError`` naming the file, the line or row and the fix.

This module only chooses: the readers and the types live in ``labelled_formats``, the registered
sets in ``classification_sets`` (loaded through the registry by ``load_labelled_set``), and all
sit below it, so the data flows one way.
"""

from __future__ import annotations

from pathlib import Path

from rnnkit.datasets.labelled_formats import (
    TAG_SUFFIXES,
    TEXT_SUFFIXES,
    Columns,
    Labelled,
    LabelledDataError,
    read_audio_folder,
    read_conll,
    read_long,
    read_npz,
    read_table,
    read_ts,
)
from rnnkit.datasets.load import load_labelled_set
from rnnkit.datasets.registry import list_datasets
from rnnkit.datasets.tables import table_suffix

# The types of load_labelled's arguments, result and error, importable from here as before.
__all__ = ["Columns", "Labelled", "LabelledDataError", "load_labelled"]


def load_labelled(source: str | Path, columns: Columns, *, aligned: bool = False, audio=None):
    """Read labelled sequences from a file, a folder of WAV files or a registered data set."""
    path = Path(source)
    if not path.exists():
        names = list_datasets("labelled")
        if str(source) in names:
            return load_labelled_set(str(source))
        raise LabelledDataError(
            f"no such file or folder: {source} (nor a data set; labelled sets: {', '.join(names)})"
        )
    if path.is_dir():
        return read_audio_folder(path, audio)
    if path.stat().st_size == 0:
        raise LabelledDataError(f"{path} is empty")
    suffix = table_suffix(path)
    if suffix in TEXT_SUFFIXES and columns.sequence_col:
        return read_long(path, columns, aligned)
    if suffix in TEXT_SUFFIXES:
        return read_table(path, columns)
    if suffix in TAG_SUFFIXES:
        return read_conll(path)
    if suffix == ".npz":
        return read_npz(path)
    if suffix == ".ts":
        return read_ts(path)
    if suffix in (".wav", ".WAV"):
        raise LabelledDataError(f"{path}: give a folder of class sub-folders of WAV files")
    raise LabelledDataError(
        f"{path}: unknown format {suffix!r}; use .csv, .tsv, .jsonl, .conll, .npz, .ts, or a "
        "folder of class sub-folders of .wav files"
    )
