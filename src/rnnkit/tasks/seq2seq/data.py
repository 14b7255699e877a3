"""Sequence pairs for an encoder-decoder: split by source, encode, batch by length.

The pairs are read by ``rnnkit.datasets.pairs`` (one ``source<TAB>target`` a line). A source may be
listed with several targets (a word with two pronunciations): the split goes by *unique source*,
so all of a source's targets fall in the same split, and evaluation counts an output as right
when it matches any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from rnnkit.datasets.padding import pad_batch
from rnnkit.datasets.pairs import PairsError
from rnnkit.datasets.splits import split_held_out_first
from rnnkit.text.tokens import TokenVocab


def group_references(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """``{source: [its distinct targets, in file order]}``."""
    references: dict[str, list[str]] = {}
    for source, target in pairs:
        targets = references.setdefault(source, [])
        if target not in targets:
            targets.append(target)
    return references


def split_by_source(
    pairs: Sequence[tuple[str, str]], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, dict[str, list[str]]]:
    """Split into ``train``/``val``/``test``, each ``{source: [targets...]}``, by unique source.

    The unique sources are sorted, shuffled with ``seed`` and cut by the shared splitter
    (``rnnkit.datasets.splits``): test and val take ``round(n * fraction)`` sources each (at
    least one each), train the rest.
    """
    references = group_references(pairs)
    sources = sorted(references)
    cuts = split_held_out_first(
        len(sources), val_fraction, test_fraction, seed=seed, what="distinct sources"
    )
    return {name: {sources[i]: references[sources[i]] for i in part} for name, part in cuts.items()}


@dataclass
class PairBatch:
    """A padded batch of encoded pairs."""

    source: Tensor
    """Source ids ``(B, S)``, right-padded with 0."""
    source_lengths: Tensor
    """``(B,)``."""
    target_in: Tensor
    """``<bos>`` + target ids ``(B, T)``: the decoder's inputs."""
    target_out: Tensor
    """Target ids + ``<eos>`` ``(B, T)``: what it should predict (0 = padding, ignored)."""
    teacher_forcing: float = 1.0
    """The probability of feeding the true previous token at each step (training only)."""


def encode_pairs(
    refs: dict[str, list[str]], source_vocab: TokenVocab, target_vocab: TokenVocab
) -> list[tuple[list[int], list[int]]]:
    """Every (source, target) of a split, encoded (the target framed by ``<bos>``/``<eos>``)."""
    out = []
    for source, targets in refs.items():
        src = source_vocab.encode(source)
        for target in targets:
            out.append((src, target_vocab.encode(target, bos=True, eos=True)))
    return out


def collate(items: Sequence[tuple[list[int], list[int]]]) -> PairBatch:
    """Pad encoded pairs into a ``PairBatch`` (``rnnkit.datasets.padding.pad_batch``)."""
    source, lengths = pad_batch([s for s, _ in items])
    target_in, _ = pad_batch([t[:-1] for _, t in items])
    target_out, _ = pad_batch([t[1:] for _, t in items])
    return PairBatch(source, lengths, target_in, target_out)


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions from a to b."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def error_rates(
    outputs: Sequence[list[str]], references: Sequence[Sequence[list[str]]]
) -> dict[str, float]:
    """Token and sequence error rates of tokenised outputs against their reference lists.

    Each output is scored against its closest reference: the token error rate is the sum of
    edit distances over the sum of those references' lengths; the sequence error rate is the
    share of outputs that match none of their references exactly.
    """
    errors = total = wrong = 0
    for out, refs in zip(outputs, references, strict=True):
        distance, length = min((edit_distance(out, r), len(r)) for r in refs)
        errors += distance
        total += length
        wrong += distance > 0
    return {
        "token_error_rate": errors / max(total, 1),
        "sequence_error_rate": wrong / max(len(outputs), 1),
    }


def batched(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def source_batch(sources: Sequence[str], vocab: TokenVocab) -> tuple[Tensor, Tensor]:
    """Encode and pad source texts; an empty one is an error (it has nothing to read)."""
    encoded = []
    for text in sources:
        ids = vocab.encode(text)
        if not ids:
            raise PairsError(f"an empty source cannot be translated: {text!r}")
        encoded.append(ids)
    return pad_batch(encoded)


def sort_by_length(sources: Sequence[str]) -> list[int]:
    """Indices ordering ``sources`` longest first (less padding when decoding in batches)."""
    return sorted(range(len(sources)), key=lambda i: -len(sources[i]))
