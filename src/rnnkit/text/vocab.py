"""Vocabularies that turn text into token ids and back.

``Vocabulary`` is what every vocabulary shares: the symbol table, the lookup (a symbol not in
the table reads as the unknown one), the way back, and the JSON form a run stores. Thin kinds
build on it: ``Vocab`` here, for the language model's one long stream of characters or bytes
(``rnnkit.text.words.WordVocab``: of words), and ``rnnkit.text.tokens.TokenVocab``, for many
short sequences of characters or words with padding and start and end tokens.

A character vocabulary is the sorted set of characters of the training text; a character never
seen in training maps to an unknown symbol (``\\ufffd``), which the model can then predict
(``rnnkit.text.unknown`` warns when text given to a trained run holds such characters).
The byte vocabulary has 256 symbols and nothing unknown: any text is its UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor

UNKNOWN = "\ufffd"
TokenizerName = Literal["char", "byte", "word"]


class Vocabulary:
    """Symbols <-> ids: the table, the lookup, the way back and the JSON form.

    A subclass is a dataclass of two fields, named by ``JSON_KEYS``: how its text splits into
    symbols (``kind``, ``level``), and the symbol table in id order; ``UNKNOWN`` is the symbol
    that stands for any symbol not in the table.
    """

    UNKNOWN: ClassVar[str]
    JSON_KEYS: ClassVar[tuple[str, str]]

    @property
    def table(self) -> list[str]:
        """Every symbol, in id order."""
        return getattr(self, self.JSON_KEYS[1])

    def _index_table(self) -> None:
        self._index = {s: i for i, s in enumerate(self.table)}
        if len(self._index) != len(self.table):
            raise ValueError(f"a {type(self).__name__} has a symbol twice")

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._index

    def lookup(self, symbols: Iterable[str]) -> list[int]:
        """Symbols to ids, each one not in the table as the unknown symbol's id."""
        unknown = self._index[self.UNKNOWN]
        return [self._index.get(s, unknown) for s in symbols]

    def symbols_of(self, ids: Iterable[int]) -> list[str]:
        """Ids back to their symbols."""
        return [self.table[int(i)] for i in ids]

    def to_json(self) -> dict:
        kind, table = self.JSON_KEYS
        return {kind: getattr(self, kind), table: self.table}

    @classmethod
    def from_json(cls, data: dict):
        kind, table = cls.JSON_KEYS
        return cls(data[kind], list(data.get(table, [])))


@dataclass
class Vocab(Vocabulary):
    """A token-id mapping. ``kind`` is ``"char"`` or ``"byte"``; ``symbols`` the char table
    (``"word"``: ``rnnkit.text.words.WordVocab``)."""

    kind: TokenizerName
    symbols: list[str] = field(default_factory=list)

    UNKNOWN: ClassVar[str] = UNKNOWN
    JSON_KEYS: ClassVar[tuple[str, str]] = ("kind", "symbols")

    def __post_init__(self) -> None:
        if self.kind not in ("char", "byte"):
            raise ValueError(f"--tokenizer must be 'char' or 'byte', got {self.kind!r}")
        self._index_table()

    @classmethod
    def build(cls, text: str, kind: TokenizerName = "char") -> Vocab:
        """The vocabulary of ``text``: its characters (plus the unknown symbol), or bytes."""
        if kind == "byte":
            return cls("byte")
        return cls("char", sorted(set(text) | {UNKNOWN}))

    def __len__(self) -> int:
        return 256 if self.kind == "byte" else super().__len__()

    def __contains__(self, char: str) -> bool:
        """Whether ``char`` has an id of its own (any character does, as bytes)."""
        return self.kind == "byte" or char in self._index

    def split(self, text: str) -> list[str]:
        """The symbols of ``text`` as the vocabulary reads them: its characters (a byte
        vocabulary reads their bytes)."""
        return list(text)

    def encode(self, text: str) -> Tensor:
        """Text to a 1-D int64 tensor of ids."""
        if self.kind == "byte":
            return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()
        return torch.tensor(self.lookup(text), dtype=torch.long)  # a str iterates by character

    def decode(self, ids: Tensor | list[int]) -> str:
        """Ids back to text (bytes that do not form UTF-8 become the replacement character)."""
        ids = ids.tolist() if isinstance(ids, Tensor) else ids
        if self.kind == "byte":
            return bytes(ids).decode("utf-8", errors="replace")
        return "".join(self.symbols_of(ids))
