"""Token vocabularies for whole sequences: characters or words, with padding and special tokens.

The language model reads one endless stream (``rnnkit.text.vocab``); a classifier, a tagger or a
translator reads many short sequences, padded into batches, some with a start and an end. A
``TokenVocab`` numbers the tokens of such sequences:

- id 0 is ``<pad>`` (so zeros pad a batch), then ``<unk>``, ``<bos>`` and ``<eos>``;
- then the training tokens, most frequent first (ties in first-seen order), up to ``max_size``
  and from ``min_count`` occurrences; anything else reads as ``<unk>``.

``level`` says how text splits into tokens: ``"char"`` (every character), ``"word"`` (lower-cased
words and single punctuation marks) or ``"space"`` (split on whitespace as written, for data that
is already tokenised, such as phoneme strings).

Example::

    >>> v = TokenVocab.build(["a good film", "a bad film"], level="word")
    >>> v.encode("a great film")
    [4, 1, 5]
    >>> v.decode(v.encode("a bad film"))
    'a bad film'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from rnnkit.text.vocab import Vocabulary

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
TokenLevel = Literal["char", "word", "space"]
LEVELS = ("char", "word", "space")
# a word is a run of letters/digits (with inner apostrophes: "don't"), or one other symbol
_WORD = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize(text: str, level: TokenLevel) -> list[str]:
    """Split ``text`` into tokens at ``level`` (see the module docstring)."""
    if level == "char":
        return list(text)
    if level == "word":
        return _WORD.findall(text.lower())
    if level == "space":
        return text.split()
    raise ValueError(f"token level must be one of {', '.join(LEVELS)}; got {level!r}")


@dataclass
class TokenVocab(Vocabulary):
    """Token <-> id, with ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3."""

    level: TokenLevel
    tokens: list[str] = field(default_factory=list)
    """Every token in id order, the four specials first."""

    UNKNOWN: ClassVar[str] = UNK
    JSON_KEYS: ClassVar[tuple[str, str]] = ("level", "tokens")

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"token level must be one of {', '.join(LEVELS)}; got {self.level!r}")
        if not self.tokens:
            self.tokens = list(SPECIALS)
        if tuple(self.tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a TokenVocab starts with {SPECIALS}; got {self.tokens[:4]}")
        self._index_table()

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        level: TokenLevel = "char",
        *,
        max_size: int | None = None,
        min_count: int = 1,
    ) -> TokenVocab:
        """The vocabulary of ``texts`` (training data only).

        Args:
            texts: the training sequences, as text.
            level: ``"char"``, ``"word"`` or ``"space"``.
            max_size: the most tokens to keep, specials included (None: all).
            min_count: drop tokens seen fewer times than this.
        """
        return cls.from_tokens(
            (tokenize(text, level) for text in texts),
            level,
            max_size=max_size,
            min_count=min_count,
        )

    @classmethod
    def from_tokens(
        cls,
        sequences: Iterable[Iterable[str]],
        level: TokenLevel = "space",
        *,
        max_size: int | None = None,
        min_count: int = 1,
    ) -> TokenVocab:
        """The vocabulary of sequences already split into tokens (a tagger's input), ranked as
        ``build`` ranks them; a token is kept whole, spaces and all (``"New York"``).

        Args:
            sequences: the training sequences, as token lists.
            level: how ``encode`` splits text later (the tokens here are taken as given).
            max_size: the most tokens to keep, specials included (None: all).
            min_count: drop tokens seen fewer times than this.
        """
        if max_size is not None and max_size <= len(SPECIALS):
            raise ValueError(
                f"--max-vocab must exceed {len(SPECIALS)} (the specials); got {max_size}"
            )
        if min_count < 1:
            raise ValueError(f"--min-count must be at least 1; got {min_count}")
        counts: Counter[str] = Counter()
        for tokens in sequences:
            counts.update(tokens)
        ranked = [t for t, n in counts.most_common() if n >= min_count and t not in SPECIALS]
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        return cls(level, [*SPECIALS, *ranked])

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Text to ids, unknown tokens as ``<unk>``, optionally framed by ``<bos>``/``<eos>``."""
        ids = self.lookup(tokenize(text, self.level))
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def decode(self, ids: Iterable[int], *, strip: bool = True) -> str:
        """Ids to text; ``strip`` drops ``<pad>`` and ``<bos>``, and stops at ``<eos>``."""
        kept = []
        for i in ids:
            i = int(i)
            if strip and i == self.eos_id:
                break
            if not (strip and i in (self.pad_id, self.bos_id)):
                kept.append(i)
        return ("" if self.level == "char" else " ").join(self.symbols_of(kept))


# -- choosing the level from the data (``--tokens auto``) -----------------------------------------
AUTO_MAX_UNKNOWN = 0.10
"""Largest share of validation words unknown to the training vocabulary that words still get."""
AUTO_MIN_WORDS = 3.0
"""Fewest words per text (median) that words still get: below it a text is a short string."""


@dataclass(frozen=True)
class LevelChoice:
    """What ``choose_level`` measured and chose."""

    level: TokenLevel
    unknown: float
    """Share of validation word tokens the training word vocabulary lacks."""
    median_words: float
    """Median number of words in a training text."""

    @property
    def reason(self) -> str:
        return (
            f"--tokens auto: {self.level} ({self.unknown:.1%} of validation words unknown to the "
            f"training vocabulary, limit {AUTO_MAX_UNKNOWN:.0%}; median {self.median_words:g} "
            f"words a text, at least {AUTO_MIN_WORDS:g} for words)"
        )

    def to_json(self) -> dict:
        return {"level": self.level, "unknown": self.unknown, "median_words": self.median_words}


def choose_level(
    train: list[str], val: list[str], *, max_size: int | None = None, min_count: int = 1
) -> LevelChoice:
    """Words or characters for a text classifier, from its training and validation texts.

    Words, unless the word vocabulary of the training split (``max_size`` and ``min_count`` as
    the model's) misses more than ``AUTO_MAX_UNKNOWN`` of the validation words, or the texts
    are short strings (median under ``AUTO_MIN_WORDS`` words): names, codes, single words, where
    a word seen once tells nothing and its spelling tells much. Thresholds chosen on validation
    splits (docs/classification.md, "Choosing the token level").
    """
    vocab = TokenVocab.build(train, "word", max_size=max_size, min_count=min_count)
    words = [w for text in val for w in tokenize(text, "word")]
    unknown = sum(w not in vocab for w in words) / max(len(words), 1)
    counts = sorted(len(tokenize(t, "word")) for t in train) or [0]
    mid = len(counts) // 2
    median = counts[mid] if len(counts) % 2 else (counts[mid - 1] + counts[mid]) / 2
    short = median < AUTO_MIN_WORDS
    level: TokenLevel = "char" if unknown > AUTO_MAX_UNKNOWN or short else "word"
    return LevelChoice(level, round(unknown, 4), float(median))
