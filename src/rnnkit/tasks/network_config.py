"""The checks every task's model config shares, so that each flag is checked, and its error
worded, one way: a known ``--cell``, sizes of at least 1 and at most a sane cap, a model small
enough to build, ``--dropout`` in [0, 1)."""

from __future__ import annotations

import math

from rnnkit.cells.registry import canonical_cell
from rnnkit.training.config import check_types

MAX_WIDTH = 2**20
"""The largest hidden or embedding size a flag may ask for."""
MAX_COUNT = 2**10
"""The most layers (or ensemble members) a flag may ask for."""
MAX_PARAMETERS = 2**31
"""The most recurrent weights a model may have: 8 GiB in float32, refused before allocating."""
GATES = 4
"""Gate blocks per layer assumed in the estimate: an LSTM's, the most of the registered cells."""


def _is_count(name: str) -> bool:
    return name.endswith("layers") or name == "members"


def check_network(cfg, positive: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the flag and the bad value, for ``cfg.cell``, ``cfg.dropout``
    and each field in ``positive`` (sizes; ``*layers`` and ``members`` are counts). ``cfg.cell``
    becomes the spec a run stores (a cell file's path made absolute).

    The recurrent weights are counted from the sizes (``GATES`` blocks of ``H x (I + H)`` per
    layer, direction and member) and a model over ``MAX_PARAMETERS`` is refused here, before
    anything is allocated."""
    check_types(cfg)
    cfg.cell = canonical_cell(cfg.cell)
    for name in positive:
        value = getattr(cfg, name)
        flag = f"--{name.replace('_', '-')}"
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
        cap = MAX_COUNT if _is_count(name) else MAX_WIDTH
        if value > cap:
            raise ValueError(f"{flag} must be at most {cap}, got {value}")
    if not 0 <= cfg.dropout < 1:
        raise ValueError(f"--dropout must lie in [0, 1), got {cfg.dropout}")
    hidden = getattr(cfg, "hidden_size", 1)
    inputs = max([hidden] + [getattr(cfg, n) for n in positive if n.endswith("embedding_size")])
    layers = sum(getattr(cfg, n) for n in positive if n.endswith("layers")) or 1
    directions = 2 if getattr(cfg, "bidirectional", False) else 1
    members = getattr(cfg, "members", 1)
    weights = members * layers * directions * GATES * hidden * (directions * inputs + hidden + 2)
    if weights > MAX_PARAMETERS:
        sizes = ", ".join(f"--{n.replace('_', '-')} {getattr(cfg, n)}" for n in positive)
        raise ValueError(
            f"the model would hold about {weights:.2e} recurrent weights ({sizes}); the limit is "
            f"2**{int(math.log2(MAX_PARAMETERS))}: choose smaller sizes"
        )
