"""Fresh models to diagnose: a cell type, a size and an initialisation, built from a seed."""

from __future__ import annotations

import torch
from torch import nn

from rnnkit import init as rinit
from rnnkit.cells import LayerNormLSTMCell
from rnnkit.cells.registry import cell_names
from rnnkit.layers import Recurrent, make_layer

CELLS = cell_names()
"""The registered cells (``rnnkit.cells.registry``): rnn (tanh), rnn_relu, lstm, gru, lnlstm."""
INITS = ("default", "orthogonal", "irnn")


def fresh_layer(
    cell: str,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    init: str = "default",
    gain: float = 1.0,
    forget_bias: float | None = None,
    seed: int = 0,
) -> nn.Module:
    """A batch-first layer of ``cell`` with torch's initialisation, then ``init`` on top:

    - ``default``: torch's own (uniform in ``±1/sqrt(H)``; LSTM forget gate near 0.5);
    - ``orthogonal``: orthogonal recurrent blocks times ``gain`` (``rnnkit.init.orthogonal_``);
    - ``irnn``: identity recurrence times ``gain`` (``rnnkit.init.irnn_``; plain RNNs only).

    ``forget_bias`` sets an LSTM's forget-gate bias (a GRU's update gate; ``lnlstm`` takes it in
    its constructor, default 1 there).
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    torch.manual_seed(seed)
    if cell == "lnlstm":
        if init != "default":
            raise ValueError("the custom lnlstm cell takes only the default initialisation")
        kwargs = {} if forget_bias is None else {"forget_bias": forget_bias}
        return Recurrent(
            LayerNormLSTMCell, input_size, hidden_size, num_layers, batch_first=True, **kwargs
        )
    layer = make_layer(cell, input_size, hidden_size, num_layers=num_layers)  # type: ignore[arg-type]
    if init == "orthogonal":
        rinit.orthogonal_(layer, gain)
    elif init == "irnn":
        rinit.irnn_(layer, gain)
    if forget_bias is not None:
        rinit.forget_gate_bias_(layer, forget_bias)
    return layer


def describe(cell: str, init: str = "default", gain: float = 1.0, forget_bias=None) -> str:
    """A short label: ``lstm``, ``rnn orthogonal``, ``lstm fb=1``."""
    parts = [cell]
    if init != "default":
        parts.append(init if gain == 1.0 else f"{init}x{gain:g}")
    if forget_bias is not None:
        parts.append(f"fb={forget_bias:g}")
    return " ".join(parts)
