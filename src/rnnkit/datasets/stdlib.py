"""The ``python-stdlib`` data set: the running Python's standard library sources, no download.

A corpus that exists wherever rnnkit runs, for when no package index can be reached. Its content
depends on the Python version and build, so it has no checksum.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

SKIPPED_FOLDERS = frozenset({"site-packages", "dist-packages", "test", "tests", "__pycache__"})
"""Folder names never entered: installed packages and the (huge, odd) test suites."""


def _is_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return True


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The standard library's ``.py`` files, sorted by path relative to ``root``.

    Skips the folders in ``SKIPPED_FOLDERS`` (at any depth), symbolic links to folders, and
    files that are not valid UTF-8 (a few carry a ``coding: latin-1`` declaration).

    Args:
        root: the library folder; default ``sysconfig.get_paths()["stdlib"]``.
    """
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS]
        found += [Path(folder, name) for name in names if name.endswith(".py")]
    found = [path for path in found if path.is_file() and _is_utf8(path)]
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())
