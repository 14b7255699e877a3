"""The language model's word vocabulary (``--tokenizer word``), and a stored vocabulary rebuilt.

Words are what a classifier's ``--tokens word`` reads (``rnnkit.text.tokens.tokenize``: lower-cased
words and single punctuation marks), so an ``lm`` run of words can start such a classifier
(``--init-from``) word by word. The table is ``<unk>`` then the words of the training part seen
at least ``min_count`` times, most frequent first (ties in first-seen order, as ``TokenVocab``
ranks them); any other word reads as ``<unk>``. Whitespace is not a token: decoding joins the
words with single spaces.

Example::

    >>> v = WordVocab.from_words("the cat and the dog and the cat".split(), min_count=2)
    >>> v.symbols
    ['<unk>', 'the', 'cat', 'and']
    >>> v.decode(v.encode("The dog, the cat"))
    'the <unk> <unk> the cat'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from rnnkit.text.tokens import UNK, tokenize
from rnnkit.text.vocab import TokenizerName, Vocab


@dataclass
class WordVocab(Vocab):
    """Word <-> id for a language model: ``<unk>`` = 0, then the kept words."""

    kind: TokenizerName = "word"
    symbols: list[str] = field(default_factory=lambda: [UNK])

    UNKNOWN: ClassVar[str] = UNK

    def __post_init__(self) -> None:
        if self.kind != "word":
            raise ValueError(f"a WordVocab reads words, got kind {self.kind!r}")
        if UNK not in self.symbols:
            raise ValueError(f"a WordVocab holds {UNK}; got {self.symbols[:4]}")
        self._index_table()

    @classmethod
    def from_words(cls, words: Iterable[str], min_count: int = 2) -> WordVocab:
        """The vocabulary of a training part's words: those seen ``min_count`` times or more."""
        if min_count < 1:
            raise ValueError(f"--min-count must be at least 1; got {min_count}")
        counts = Counter(words)
        ranked = [w for w, n in counts.most_common() if n >= min_count and w != UNK]
        return cls("word", [UNK, *ranked])

    def split(self, text: str) -> list[str]:
        """The words of ``text``, as the vocabulary reads them."""
        return tokenize(text, "word")

    def encode(self, text: str) -> Tensor:
        """Text to a 1-D int64 tensor of word ids (unknown words as ``<unk>``)."""
        return torch.tensor(self.lookup(self.split(text)), dtype=torch.long)

    def decode(self, ids: Tensor | list[int]) -> str:
        """Ids back to text: the words joined with spaces."""
        ids = ids.tolist() if isinstance(ids, Tensor) else ids
        return " ".join(self.symbols_of(ids))


def vocab_from_json(data: dict) -> Vocab:
    """A language-model run's stored vocabulary (``config.json``: task, vocab), rebuilt."""
    return (WordVocab if data.get("kind") == "word" else Vocab).from_json(data)
