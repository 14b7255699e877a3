"""Bytes to text, strictly: the decoding and joining shared by named texts and user corpora.

A byte that does not decode is an error naming the file and the offset, never a silent
replacement character; a leading byte-order mark is dropped; files are joined with a newline
between two when the first does not end with one, so that no line runs on into the next file.
"""

from __future__ import annotations

from pathlib import Path


class CorpusError(ValueError):
    """A corpus could not be read as text: missing, binary, not UTF-8, or empty."""


def decode_text(data: bytes, path: Path, encoding: str) -> str:
    """``data`` (the bytes of ``path``) decoded strictly, without a leading byte-order mark.

    Raises:
        CorpusError: a byte does not decode; the message names the file, offset and line.
    """
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        hint = "; convert it first, e.g. `iconv -f latin1 -t utf-8`" if encoding == "utf-8" else ""
        raise CorpusError(
            f"{path} is not valid {encoding}: byte 0x{data[error.start]:02x} at offset "
            f"{error.start} (line {line}, byte {column} of the line){hint}"
        ) from error
    return text.removeprefix("\ufeff")


def join_texts(texts: list[str]) -> str:
    """Concatenate texts, with a newline between two texts when the first does not end in one."""
    return "".join(
        text + "\n" if i < len(texts) - 1 and text and not text.endswith("\n") else text
        for i, text in enumerate(texts)
    )
