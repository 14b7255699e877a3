"""The computation paths every standard layer and cell offers, and the GRU's third."""

from __future__ import annotations

BACKENDS = ("auto", "native", "reference")
"""``native``: torch's fused kernels (oneDNN, cuDNN). ``reference``: rnnkit's explicit loop.
``auto``: native unless the call needs the reference (per-step states)."""

GRU_BACKENDS = (*BACKENDS, "fused")
"""``fused``: rnnkit's own C++ time loop for ``rnnkit.GRU`` on the CPU (faster than torch's GRU,
which runs one ATen op after another per step); see ``rnnkit.GRU``."""


def check_backend(backend: str, *, owner: str = "this layer", fused: bool = False) -> str:
    """Validate a ``backend=`` argument and return it.

    Args:
        backend: the value given.
        owner: who was given it (``"LSTM"``, ``"GRUCell"``), for the message.
        fused: whether ``owner`` has the ``"fused"`` path (only ``rnnkit.GRU`` does).
    """
    if backend == "fused" and not fused:
        raise ValueError(
            f"backend='fused' is for rnnkit.GRU only, not {owner}: use one of {BACKENDS}"
        )
    allowed = GRU_BACKENDS if fused else BACKENDS
    if backend not in allowed:
        raise ValueError(f"backend must be one of {allowed}, got {backend!r}")
    return backend
