"""Symbols a model never saw, in text given to a trained run (a prime, sources to translate).

Both vocabularies read such a symbol as their unknown one (``\\ufffd`` in a character
vocabulary, ``<unk>`` in a ``TokenVocab``), in training as in use: a text is read the same way
wherever it comes from, and a source keeps its length. What this module adds is that it no
longer happens silently: ``check_known`` warns on stderr with their count and the first few,
and refuses text of which the model would know nothing at all.

Example::

    check_known([list("café")], Vocab.build("cafe"), "--prime", "characters")
    # stderr: warning: 1 character of --prime is not in the run's vocabulary ('é'); it reads
    # as the unknown symbol
"""

from __future__ import annotations

import sys
from collections.abc import Container, Sequence

SHOWN = 5
"""How many distinct unknown symbols a message lists."""
SYMBOL_NAMES = {"char": "characters", "word": "words", "space": "tokens"}
"""What a ``TokenVocab`` of each level splits text into, for messages."""


class UnknownSymbolsError(ValueError):
    """Nothing in a text given to a run is in the run's vocabulary."""


def check_known(
    pieces: Sequence[Sequence[str]], vocab: Container[str], what: str, unit: str
) -> list[str]:
    """Warn about the symbols of ``pieces`` that ``vocab`` does not hold; return them.

    Args:
        pieces: each text, split into the symbols the vocabulary numbers (characters, words).
        vocab: the run's vocabulary (``symbol in vocab``).
        what: the text as the user knows it (``--prime``, ``the source``), or for several
            texts their plural noun (``sources``).
        unit: the symbols' name, plural (``characters``, ``words``).

    Raises:
        UnknownSymbolsError: there are symbols, and none of them is in the vocabulary.
    """
    total = sum(len(p) for p in pieces)
    unknown = [s for p in pieces for s in p if s not in vocab]
    if not unknown:
        return unknown
    distinct = list(dict.fromkeys(unknown))
    shown = ", ".join(repr(s) for s in distinct[:SHOWN]) + (
        ", ..." if len(distinct) > SHOWN else ""
    )
    many = len(pieces) > 1
    if len(unknown) == total:
        of_what = f"of the {len(pieces)} {what}" if many else f"of {what}"
        raise UnknownSymbolsError(
            f"no {_unit(unit, 1)} {of_what} is in the run's vocabulary ({shown}); the model "
            "would read nothing it knows"
        )
    texts = sum(1 for p in pieces if any(s not in vocab for s in p))
    where = f"in {texts} of the {len(pieces)} {what}" if many else f"of {what}"
    are, they = ("is", "it reads") if len(unknown) == 1 else ("are", "they read")
    print(
        f"warning: {len(unknown)} {_unit(unit, len(unknown))} {where} {are} not in the run's "
        f"vocabulary ({shown}); {they} as the unknown symbol",
        file=sys.stderr,
    )
    return unknown


def _unit(unit: str, n: int) -> str:
    return unit[:-1] if n == 1 and unit.endswith("s") else unit
