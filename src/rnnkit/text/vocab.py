"""Vocabularies that turn text into token ids and back: characters (default) or bytes.

A character vocabulary is the sorted set of characters of the training text; a character never
seen in training maps to an unknown symbol (``\\ufffd``), which the model can then predict
(``rnnkit.text.unknown`` warns when text given to a trained run holds such characters).
The byte vocabulary has 256 symbols and nothing unknown: any text is its UTF-8 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

UNKNOWN = "\ufffd"
TokenizerName = Literal["char", "byte"]


@dataclass
class Vocab:
    """A token-id mapping. ``kind`` is ``"char"`` or ``"byte"``; ``symbols`` the char table."""

    kind: TokenizerName
    symbols: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in ("char", "byte"):
            raise ValueError(f"--tokenizer must be 'char' or 'byte', got {self.kind!r}")
        self._index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def build(cls, text: str, kind: TokenizerName = "char") -> Vocab:
        """The vocabulary of ``text``: its characters (plus the unknown symbol), or bytes."""
        if kind == "byte":
            return cls("byte")
        return cls("char", sorted(set(text) | {UNKNOWN}))

    def __len__(self) -> int:
        return 256 if self.kind == "byte" else len(self.symbols)

    def __contains__(self, char: str) -> bool:
        """Whether ``char`` has an id of its own (any character does, as bytes)."""
        return self.kind == "byte" or char in self._index

    def encode(self, text: str) -> Tensor:
        """Text to a 1-D int64 tensor of ids."""
        if self.kind == "byte":
            return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()
        unk = self._index[UNKNOWN]
        return torch.tensor([self._index.get(ch, unk) for ch in text], dtype=torch.long)

    def decode(self, ids: Tensor | list[int]) -> str:
        """Ids back to text (bytes that do not form UTF-8 become the replacement character)."""
        ids = ids.tolist() if isinstance(ids, Tensor) else ids
        if self.kind == "byte":
            return bytes(ids).decode("utf-8", errors="replace")
        return "".join(self.symbols[i] for i in ids)

    def to_json(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols}

    @classmethod
    def from_json(cls, data: dict) -> Vocab:
        return cls(data["kind"], list(data.get("symbols", [])))
