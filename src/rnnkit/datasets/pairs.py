"""Sequence pairs on disk: one ``source<TAB>target`` a line (blank lines are skipped).

``read_pairs`` reads such a file; ``load_pairs`` takes a pair data set's name (``cmudict``) or
a file. Encoding the pairs for a model is the seq2seq task's (``rnnkit.tasks.seq2seq.data``).
"""

from __future__ import annotations

from pathlib import Path


class PairsError(ValueError):
    """A pairs file is missing or malformed; the message names the file and the line."""


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """``(source, target)`` pairs of a UTF-8 ``source<TAB>target`` file."""
    path = Path(path)
    if not path.is_file():
        raise PairsError(f"{path}: no such file (expected source<TAB>target lines)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PairsError(f"{path}: not UTF-8 text (byte {e.start})") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise PairsError(f"{path}, line {number}: no tab between source and target: {line!r}")
        source, target = line.split("\t", 1)
        if "\t" in target:
            raise PairsError(
                f"{path}, line {number}: more than one tab (expected source<TAB>target)"
            )
        for side, value in (("source", source), ("target", target)):
            if not value.strip():
                raise PairsError(f"{path}, line {number}: the {side} is empty: {line!r}")
        pairs.append((source.strip(), target.strip()))
    if not pairs:
        raise PairsError(f"{path}: no source<TAB>target lines")
    return pairs
