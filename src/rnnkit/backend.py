"""The two computation paths every standard layer and cell offers."""

from __future__ import annotations

BACKENDS = ("auto", "native", "reference")
"""``native``: torch's fused kernels (oneDNN, cuDNN). ``reference``: rnnkit's explicit loop.
``auto``: native unless the call needs the reference (per-step states)."""


def check_backend(backend: str) -> str:
    """Validate a ``backend=`` argument and return it."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend
