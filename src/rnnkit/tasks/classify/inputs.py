"""Turning labelled examples into tensors: token ids for text, standardised floats for numbers.

``InputEncoder`` is fitted on the training split only (the vocabulary, the feature means and
spreads) and stored in the run's config, so that prediction and evaluation encode new data the
same way. ``LabelEncoder`` numbers the classes seen in training; a label it has not seen is an
error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnkit.text.tokens import TokenVocab


@dataclass
class InputEncoder:
    """Encodes one kind of input: ``text`` (a ``TokenVocab``), ``tokens`` (given tokens, one per
    step, for tagging) or ``numeric``/``audio`` (``(T, F)`` arrays, standardised)."""

    kind: str
    max_length: int
    vocab: TokenVocab | None = None
    mean: list[float] | None = None
    std: list[float] | None = None

    @classmethod
    def fit(cls, kind: str, inputs: list, *, level: str, max_vocab, min_count, max_length):
        if kind == "text":
            vocab = TokenVocab.build(inputs, level, max_size=max_vocab, min_count=min_count)
            return cls(kind, max_length, vocab=vocab)
        if kind == "tokens":  # kept whole: a token may hold a space ("New York")
            vocab = TokenVocab.from_tokens(inputs, "space", max_size=max_vocab, min_count=min_count)
            return cls(kind, max_length, vocab=vocab)
        steps = np.concatenate(inputs, axis=0).astype(np.float64)
        std = steps.std(0)
        std[std < 1e-8] = 1.0  # a constant feature stays as it is, shifted to zero
        return cls(kind, max_length, mean=steps.mean(0).tolist(), std=std.tolist())

    @property
    def vocab_size(self) -> int | None:
        return len(self.vocab) if self.vocab is not None else None

    @property
    def feature_size(self) -> int | None:
        return len(self.mean) if self.mean is not None else None

    def encode(self, item) -> Tensor:
        """One example as ``(T,)`` ids or ``(T, F)`` floats, cut to ``max_length`` steps."""
        if self.kind == "text":
            ids = self.vocab.encode(item)[: self.max_length]  # type: ignore[union-attr]
            return torch.tensor(ids or [self.vocab.unk_id], dtype=torch.long)  # type: ignore[union-attr]
        if self.kind == "tokens":
            ids = self.vocab.lookup(item[: self.max_length])  # type: ignore[union-attr]
            return torch.tensor(ids, dtype=torch.long)
        array = np.asarray(item, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != len(self.mean):  # type: ignore[arg-type]
            raise ValueError(
                f"a sequence of shape {array.shape} does not fit this model, which reads "
                f"{len(self.mean)} features per step"  # type: ignore[arg-type]
            )
        scaled = (array[: self.max_length] - np.float32(self.mean)) / np.float32(self.std)
        return torch.from_numpy(scaled.astype(np.float32))

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "max_length": self.max_length,
            "vocab": self.vocab.to_json() if self.vocab is not None else None,
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_json(cls, data: dict) -> InputEncoder:
        vocab = TokenVocab.from_json(data["vocab"]) if data.get("vocab") else None
        return cls(data["kind"], data["max_length"], vocab, data.get("mean"), data.get("std"))


@dataclass
class LabelEncoder:
    """Class names <-> ids, the classes of the training split in sorted order."""

    classes: list[str]

    @classmethod
    def fit(cls, labels: list, aligned: bool) -> LabelEncoder:
        seen = {t for row in labels for t in row} if aligned else set(labels)
        return cls(sorted(seen))

    def __post_init__(self) -> None:
        self._index = {c: i for i, c in enumerate(self.classes)}

    def encode(self, label: str) -> int:
        if label not in self._index:
            shown = ", ".join(self.classes[:20]) + (" ..." if len(self.classes) > 20 else "")
            raise ValueError(f"label {label!r} was not seen in training; the model knows: {shown}")
        return self._index[label]

    def encode_all(self, labels: list, aligned: bool) -> list:
        if aligned:
            return [torch.tensor([self.encode(t) for t in row]) for row in labels]
        return [self.encode(t) for t in labels]
