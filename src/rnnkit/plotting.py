"""Where every picture starts: matplotlib's pyplot on a file-only backend, or an error that says
which extra to install (matplotlib is not a core dependency)."""

from __future__ import annotations


def pyplot(what: str = "plots"):
    """``matplotlib.pyplot`` on the Agg backend (no screen needed); ``what`` names the picture
    in the ``ImportError`` raised when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(f"{what} need matplotlib: pip install 'rnnkit[plot]'") from e
    return plt
