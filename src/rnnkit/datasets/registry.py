"""The registry of named data sets: every set of every kind, by name.

Sets are declared in one module per task family (``SET_MODULES``: the texts, the labelled sets,
the series, the pairs and tables), each as a tuple ``SPECS`` of ``DatasetSpec``; this module
imports those modules and registers each entry with ``register_dataset``, the one way a set
enters the registry. The imports run one way: set modules -> ``spec``, registry -> set modules.

Example::

    >>> from rnnkit.datasets import get_spec, list_datasets
    >>> list_datasets("series")
    ['airline', 'co2', 'sp500', 'sunspots']
    >>> get_spec("cmudict").kind
    'pairs'
"""

from __future__ import annotations

import glob
import os

from rnnkit.datasets import classification_sets, seq2seq_sets, series_sets, text_sets
from rnnkit.datasets.spec import KINDS, DatasetError, DatasetSpec, member_matches

__all__ = [
    "KINDS",
    "SET_MODULES",
    "DatasetError",
    "DatasetSpec",
    "describe_datasets",
    "get_spec",
    "list_datasets",
    "member_matches",
    "register_dataset",
]

SET_MODULES = (text_sets, classification_sets, series_sets, seq2seq_sets)
"""The modules that declare named sets, each with ``SPECS: tuple[DatasetSpec, ...]``."""

_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a set to the registry, under its name; returns it.

    Raises:
        DatasetError: a set of that name is registered already (names are unique across kinds,
            since ``--data NAME`` must mean one set).
    """
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"register_dataset takes a DatasetSpec, got {type(spec).__name__}")
    taken = _REGISTRY.get(spec.name)
    if taken is not None:
        raise DatasetError(
            f"data set {spec.name!r} is registered twice (a {taken.kind} set and a {spec.kind} set)"
        )
    _REGISTRY[spec.name] = spec
    return spec


for _module in SET_MODULES:
    for _spec in _module.SPECS:
        register_dataset(_spec)


def list_datasets(kind: str | None = None) -> list[str]:
    """The registered data set names, sorted; only those of ``kind`` (one of ``KINDS``) if given.

    Raises:
        ValueError: ``kind`` is not one of ``KINDS``.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return sorted(name for name, spec in _REGISTRY.items() if kind in (None, spec.kind))


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``.

    Raises:
        DatasetError: no data set has that name; the message lists the known ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_datasets())
        raise DatasetError(f"unknown data set {name!r}; known data sets: {known}") from None


def describe_datasets() -> str:
    """One line per registered set, sorted by name: name, kind, description and licence.

    What ``rnnkit datasets`` prints.
    """
    return "\n".join(
        f"{name:<16}{spec.kind:<10}{spec.description}  [{spec.licence}]"
        for name, spec in sorted(_REGISTRY.items())
    )


def stored_data_path(data: str | None) -> str | None:
    """``--data`` as a run stores it: a data-set name as given, an existing relative path (or a
    relative glob that matches) made absolute, so that ``evaluate`` and ``--resume`` find the
    data from any folder. Anything else is kept for the reader to refuse with its own message."""
    if not isinstance(data, str) or not data or data in list_datasets():
        return data
    expanded = os.path.expanduser(data)
    if os.path.isabs(expanded):
        return expanded
    if os.path.exists(expanded) or (any(c in data for c in "*?[") and glob.glob(expanded)):
        return os.path.abspath(expanded)
    return data
