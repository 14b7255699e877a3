"""Comma-separated lists, as flags write them: ``--cell rnn,lstm``, ``--lengths 10,20,50``."""

from __future__ import annotations


def split_commas(text: str) -> list[str]:
    """``"rnn, lstm,,gru"`` -> ``["rnn", "lstm", "gru"]``: stripped, empty items dropped."""
    return [p.strip() for p in text.split(",") if p.strip()]


def comma_ints(text: str, flag: str) -> list[int]:
    """The integers of a comma-separated list; a ValueError naming ``flag`` if one is not."""
    try:
        return [int(p) for p in split_commas(text)]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated integers, got {text!r}") from None
