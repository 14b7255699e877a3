"""A layer from a cell spec: the one place that turns ``--cell`` into a recurrent layer.

A registered cell with a fused mode (torch's own four) becomes ``rnnkit.RNN``/``LSTM``/``GRU``
and keeps torch's fused kernels; every other cell, registered or given as a class or as
``MODULE:CLASS`` / ``FILE.py:CLASS``, is unrolled by ``rnnkit.Recurrent``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rnnkit.cells.registry import CellEntry, get_cell
from rnnkit.layers.recurrent import Recurrent
from rnnkit.layers.standard import GRU, LSTM, RNN

CellSpec = str | CellEntry | Callable[..., nn.Module]
"""A registered cell's name, ``MODULE:CLASS``, ``FILE.py:CLASS``, or a cell class itself."""

_FUSED = {"LSTM": LSTM, "GRU": GRU, "RNN_TANH": RNN, "RNN_RELU": RNN}


def make_layer(
    cell: CellSpec,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
    batch_first: bool = True,
) -> nn.Module:
    """Build the rnnkit layer for ``cell``, with torch.nn's arguments.

    ``cell`` is a registered name (``rnnkit.cells.registry.cell_names()``), a ``MODULE:CLASS``
    or ``FILE.py:CLASS`` spec, or a cell class, which ``rnnkit.Recurrent`` unrolls.
    """
    kwargs = dict(
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        batch_first=batch_first,
    )
    if not isinstance(cell, (str, CellEntry)):
        return Recurrent(cell, input_size, hidden_size, **kwargs)
    entry = get_cell(cell)
    if entry.fused is not None:  # the entry's kwargs (an RNN's nonlinearity) go to the layer
        return _FUSED[entry.fused](input_size, hidden_size, **kwargs, **entry.kwargs)
    return Recurrent(entry.cell, input_size, hidden_size, **kwargs, **entry.kwargs)
