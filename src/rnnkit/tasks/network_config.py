"""The checks every task's model config shares, so that each flag is checked, and its error
worded, one way: a known ``--cell``, sizes of at least 1 and at most a sane cap, a model small
enough to build, ``--dropout`` in [0, 1); and ``LayerOptions``, the recurrent layers'
regularisers and initialisation that every task's model config inherits."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from rnnkit.cells.registry import canonical_cell
from rnnkit.layers.build import check_layer_options
from rnnkit.training.config import check_types


@dataclass(kw_only=True)
class LayerOptions:
    """The recurrent layers' regularisers and initialisation (``rnnkit.layers.make_layer``).

    A run stores them with the rest of its model config; a run stored before they existed loads
    with these defaults, which build the layer it was trained with."""

    recurrent_dropout: float = 0.0
    """Variational dropout (Gal & Ghahramani 2016): one mask per sequence on each layer's input
    and hidden state, in training. Runs the unrolled layer instead of torch's fused kernel."""
    weight_drop: float = 0.0
    """Weight drop (AWD-LSTM, Merity et al. 2017): DropConnect on the recurrent matrices W_hh,
    one mask per forward, in training. Keeps torch's fused kernels."""
    zoneout: float = 0.0
    """Zoneout (Krueger et al. 2016): each state unit keeps its previous value with this
    probability at each step in training (the expectation in evaluation). Runs unrolled."""
    # a plain str, not a Literal: `rnnkit diagnose --init` reads comma lists under the same name
    init: str = "default"
    """Initialisation: default (torch's, or the cell's own), orthogonal, irnn (rnn, rnn_relu) or
    chrono (lstm, gru, lnlstm, lngru; Tallec & Ollivier 2018, with --max-dependency)."""
    max_dependency: int = 0
    """T_max for --init chrono: the longest dependency expected, in steps (at least 2)."""


def layer_options(cfg: Any) -> dict[str, Any]:
    """The ``make_layer`` options that a model config holds (none for a config without them)."""
    if not isinstance(cfg, LayerOptions):
        return {}
    return {f.name: getattr(cfg, f.name) for f in fields(LayerOptions)}


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
    if isinstance(cfg, LayerOptions):
        check_layer_options(cfg.cell, **layer_options(cfg))
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
