"""The checks every task's model config shares, so that each flag is checked, and its error
worded, one way: a known ``--cell``, sizes of at least 1, ``--dropout`` in [0, 1)."""

from __future__ import annotations

from rnnkit.cells.registry import canonical_cell


def check_network(cfg, positive: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the flag and the bad value, for ``cfg.cell``, ``cfg.dropout``
    and each field in ``positive``. ``cfg.cell`` becomes the spec a run stores (a cell file's
    path made absolute)."""
    cfg.cell = canonical_cell(cfg.cell)
    for name in positive:
        value = getattr(cfg, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not 0 <= cfg.dropout < 1:
        raise ValueError(f"--dropout must lie in [0, 1), got {cfg.dropout}")
