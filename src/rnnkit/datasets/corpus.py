"""A training text from a data set name, a file, a folder or a glob: UTF-8, checked, joined.

Files are read as bytes and decoded strictly (see ``rnnkit.datasets.text``): a byte that is not
UTF-8 is an error naming the file and the offset. Several files are joined in sorted order.
A name is a registered text set, read with ``load_text``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from rnnkit.datasets.load import load_text
from rnnkit.datasets.registry import list_datasets
from rnnkit.datasets.text import CorpusError, decode_text, join_texts

# load_text and the text helpers are imported from here too, as before.
__all__ = ["CorpusError", "join_texts", "load_corpus", "load_text"]

BINARY_SAMPLE_BYTES = 8192
"""How much of a file the binary check looks at (as git does)."""

BINARY_FRACTION = 0.3
"""A file whose sample has more than this share of non-text characters is binary."""

_TEXT_CONTROLS = frozenset("\t\n\v\f\r\b\x1b")


def load_corpus(source: str | os.PathLike[str]) -> str:
    """The text to train on, from a data set name, a file, a folder or a glob.

    ``source`` is tried in this order:

    1. a registered data set name (a ``str`` only; write ``./shakespeare`` for a local path of
       that name), read with ``load_text`` (a set of another kind than text is an error);
    2. a file;
    3. a folder: every regular file below it, recursively, sorted by relative path, skipping
       hidden files and folders (names starting with ``.``) and not following links to folders;
    4. a glob (``*``, ``?``, ``[...]``, and ``**`` for any depth), matched files sorted by path
       (matched folders are read as in 3).

    Files must be UTF-8 text.

    Raises:
        CorpusError: nothing matches ``source``; a file is binary (a NUL byte, or mostly
            non-text); a file is not valid UTF-8 (the message names the file and the byte offset);
            or the corpus is empty.
        DatasetError: a data set could not be fetched, or does not yield text.

    Example::

        >>> text = load_corpus("data/*.txt")
    """
    if isinstance(source, str) and source in list_datasets():
        text = load_text(source)
    else:
        paths = _resolve(source)
        text = join_texts([_read_user_file(path) for path in paths])
    if not text:
        raise CorpusError(f"corpus {os.fspath(source)!r} is empty: there is no text to train on")
    return text


def _resolve(source: str | os.PathLike[str]) -> list[Path]:
    raw = os.fspath(source)
    path = Path(raw).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = _files_below(path)
        if not files:
            raise CorpusError(f"folder {raw!r} holds no (non-hidden) files")
        return files
    if path.exists():
        raise CorpusError(f"{raw!r} is neither a regular file nor a folder")
    if any(char in raw for char in "*?["):
        files = []
        for match in sorted(glob.glob(os.path.expanduser(raw), recursive=True)):
            found = Path(match)
            files += [found] if found.is_file() else _files_below(found) if found.is_dir() else []
        if not files:
            raise CorpusError(f"the glob {raw!r} matches no files")
        return list(dict.fromkeys(files))
    known = ", ".join(list_datasets())
    raise CorpusError(
        f"{raw!r} is not a file, a folder, a glob or a data set name (known data sets: {known})"
    )


def _files_below(folder: Path) -> list[Path]:
    found = []
    for parent, subfolders, names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [Path(parent, name) for name in names if not name.startswith(".")]
    found = [path for path in found if path.is_file()]
    return sorted(found, key=lambda path: path.relative_to(folder).as_posix())


def _read_user_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorpusError(f"cannot read {path}: {error.strerror or error}") from error
    if b"\0" in data:
        offset = data.index(b"\0")
        raise CorpusError(
            f"{path} looks binary (a NUL byte at offset {offset}); a corpus must be UTF-8 text"
        )
    sample = data[:BINARY_SAMPLE_BYTES].decode("utf-8", errors="replace")
    odd = sum(1 for char in sample if char == "\ufffd" or _is_control(char))
    if sample and odd / len(sample) > BINARY_FRACTION:
        raise CorpusError(
            f"{path} looks binary ({odd} of the first {len(sample)} characters are not text); "
            f"a corpus must be UTF-8 text"
        )
    return decode_text(data, path, "utf-8")


def _is_control(char: str) -> bool:
    return (char < " " or char == "\x7f") and char not in _TEXT_CONTROLS
