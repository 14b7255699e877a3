"""The checks every task's model config shares, so that each flag is checked, and its error
worded, one way: a known ``--cell``, sizes of at least 1, ``--dropout`` in [0, 1)."""

from __future__ import annotations

from rnnkit.architectures.many_to_many import CELL_NAMES


def check_network(cfg, positive: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the flag and the bad value, for ``cfg.cell``, ``cfg.dropout``
    and each field in ``positive``."""
    if cfg.cell not in CELL_NAMES:
        raise ValueError(f"--cell must be one of {', '.join(CELL_NAMES)}; got {cfg.cell!r}")
    for name in positive:
        value = getattr(cfg, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not 0 <= cfg.dropout < 1:
        raise ValueError(f"--dropout must lie in [0, 1), got {cfg.dropout}")
