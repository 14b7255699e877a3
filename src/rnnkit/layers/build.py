"""A layer from a cell spec: the one place that turns ``--cell`` into a recurrent layer.

A registered cell with a fused mode (torch's own four) becomes ``rnnkit.RNN``/``LSTM``/``GRU``
and keeps torch's fused kernels; every other cell, registered or given as a class or as
``MODULE:CLASS`` / ``FILE.py:CLASS``, is unrolled by ``rnnkit.Recurrent``.

The regularisers and initialisations every task offers are options here too:

- ``weight_drop`` (AWD-LSTM's DropConnect on ``W_hh``) keeps the fused kernels
  (``rnnkit.layers.weight_drop``);
- ``recurrent_dropout`` (variational dropout) and ``zoneout`` change the step itself, which a
  fused kernel cannot do: only with them on, the layer is unrolled by ``rnnkit.Recurrent`` over
  ``rnnkit.cells.regularisers.RegularisedCell`` (torch's own cells keep their maths);
- ``init``: ``default`` (torch's or the cell's own), ``orthogonal``, ``irnn`` or ``chrono``
  (with ``max_dependency``), from ``rnnkit.init``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

from rnnkit import init as rinit
from rnnkit.cells.registry import CellEntry, get_cell
from rnnkit.cells.regularisers import RegularisedCell, check_probability
from rnnkit.cells.standard import GRUCell, LSTMCell, RNNCell
from rnnkit.layers.recurrent import Recurrent
from rnnkit.layers.standard import GRU, LSTM, RNN
from rnnkit.layers.weight_drop import WeightDropGRU, WeightDropLSTM, WeightDropRNN

CellSpec = str | CellEntry | Callable[..., nn.Module]
"""A registered cell's name, ``MODULE:CLASS``, ``FILE.py:CLASS``, or a cell class itself."""

_FUSED = {"LSTM": LSTM, "GRU": GRU, "RNN_TANH": RNN, "RNN_RELU": RNN}
_WEIGHT_DROP = {"LSTM": WeightDropLSTM, "GRU": WeightDropGRU, "RNN_TANH": WeightDropRNN}
_WEIGHT_DROP["RNN_RELU"] = WeightDropRNN
_CELLS = {"LSTM": LSTMCell, "GRU": GRUCell, "RNN_TANH": RNNCell, "RNN_RELU": RNNCell}
INITS = ("default", "orthogonal", "irnn", "chrono")
"""The initialisations ``make_layer`` (and every task's ``--init``) takes."""


def check_layer_options(
    cell: CellSpec,
    *,
    recurrent_dropout: float = 0.0,
    weight_drop: float = 0.0,
    zoneout: float = 0.0,
    init: str = "default",
    max_dependency: int = 0,
) -> None:
    """Raise ``ValueError`` naming the flag for options that ``cell`` cannot take, before
    anything is built (a task's config calls it when it is made)."""
    for flag, p in (
        ("--recurrent-dropout", recurrent_dropout),
        ("--weight-drop", weight_drop),
        ("--zoneout", zoneout),
    ):
        check_probability(flag, p)
    if init not in INITS:
        raise ValueError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
    if isinstance(max_dependency, bool) or not isinstance(max_dependency, int):
        raise ValueError(f"--max-dependency must be an integer, got {max_dependency!r}")
    if init == "chrono" and max_dependency < 2:
        raise ValueError(
            f"--init chrono needs --max-dependency T (the longest dependency, >= 2), "
            f"got {max_dependency}"
        )
    if init != "chrono" and max_dependency != 0:
        raise ValueError("--max-dependency is for --init chrono only")
    entry = get_cell(cell) if isinstance(cell, (str, CellEntry)) else None
    fused = entry.fused if entry is not None else None
    name = entry.name if entry is not None else getattr(cell, "__name__", str(cell))
    unrolled = recurrent_dropout > 0 or zoneout > 0
    if init in ("orthogonal", "irnn") and (fused is None or unrolled):
        raise ValueError(
            f"--init {init} is for the fused rnn, rnn_relu, lstm and gru layers (without "
            f"--recurrent-dropout or --zoneout), not {name}"
        )
    if init == "irnn" and fused not in ("RNN_TANH", "RNN_RELU"):
        raise ValueError(f"--init irnn is for plain RNNs (rnn, rnn_relu), not {name}")
    if init == "chrono" and name not in ("lstm", "gru", "lnlstm", "lngru"):
        raise ValueError(f"--init chrono is for lstm, gru, lnlstm and lngru, not {name}")
    if weight_drop > 0 and fused is None and name not in ("lnlstm", "lngru"):
        raise ValueError(
            f"--weight-drop drops a recurrent matrix W_hh: {name} has none that it can drop "
            "(rnn, rnn_relu, lstm, gru, lnlstm and lngru have)"
        )


def make_layer(
    cell: CellSpec,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
    batch_first: bool = True,
    recurrent_dropout: float = 0.0,
    weight_drop: float = 0.0,
    zoneout: float = 0.0,
    init: str = "default",
    max_dependency: int = 0,
) -> nn.Module:
    """Build the rnnkit layer for ``cell``, with torch.nn's arguments and the options of the
    module docstring.

    ``cell`` is a registered name (``rnnkit.cells.registry.cell_names()``), a ``MODULE:CLASS``
    or ``FILE.py:CLASS`` spec, or a cell class, which ``rnnkit.Recurrent`` unrolls. With every
    option at its default the layer is exactly the one built without them.
    """
    options = dict(recurrent_dropout=recurrent_dropout, weight_drop=weight_drop, zoneout=zoneout)
    check_layer_options(cell, **options, init=init, max_dependency=max_dependency)
    kwargs = dict(
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        batch_first=batch_first,
    )
    layer = _build(cell, input_size, hidden_size, kwargs, **options)
    if init == "orthogonal":
        rinit.orthogonal_(layer)
    elif init == "irnn":
        rinit.irnn_(layer)
    elif init == "chrono":
        rinit.chrono_(layer, max_dependency)
    return layer


def _build(cell, input_size, hidden_size, kwargs, *, recurrent_dropout, weight_drop, zoneout):
    entry = cell if not isinstance(cell, (str, CellEntry)) else get_cell(cell)
    fused = entry.fused if isinstance(entry, CellEntry) else None
    cell_cls = entry.cell if isinstance(entry, CellEntry) else entry
    cell_kwargs = dict(entry.kwargs) if isinstance(entry, CellEntry) else {}
    if recurrent_dropout > 0 or zoneout > 0:  # the step changes: unrolled, torch's maths kept
        base = _CELLS[fused] if fused is not None else cell_cls
        regularisers = dict(
            recurrent_dropout=recurrent_dropout, zoneout=zoneout, weight_drop=weight_drop
        )
        return Recurrent(
            RegularisedCell,
            input_size,
            hidden_size,
            **kwargs,
            base=base,
            **regularisers,
            **cell_kwargs,
        )
    if fused is not None:  # the entry's kwargs (an RNN's nonlinearity) go to the layer
        if weight_drop > 0:
            return _WEIGHT_DROP[fused](
                input_size, hidden_size, **kwargs, **cell_kwargs, weight_drop=weight_drop
            )
        return _FUSED[fused](input_size, hidden_size, **kwargs, **cell_kwargs)
    if weight_drop > 0:
        return Recurrent(
            RegularisedCell,
            input_size,
            hidden_size,
            **kwargs,
            base=cell_cls,
            weight_drop=weight_drop,
            **cell_kwargs,
        )
    return Recurrent(cell_cls, input_size, hidden_size, **kwargs, **cell_kwargs)


_TORCH_NAME = re.compile(r"(.+)_l(\d+)(_reverse)?")


def layer_parameters(layer: nn.Module) -> dict[tuple[int, int, str], nn.Parameter]:
    """A recurrent layer's parameters keyed by ``(layer, direction, name in the cell)``, the
    same for both layouts that ``make_layer`` builds: torch's (``weight_hh_l1_reverse``, also
    under weight drop) and the unrolled one (``cells.3.weight_hh``, a ``RegularisedCell``'s
    ``cells.3.cell.weight_hh``). A language model's layers and a classifier's built with other
    regularisers differ in layout but not in weights: this is how one copies into the other."""
    out: dict[tuple[int, int, str], nn.Parameter] = {}
    if isinstance(layer, Recurrent):
        directions = 2 if layer.bidirectional else 1
        for i, cell in enumerate(layer.cells):
            inner = cell.cell if isinstance(cell, RegularisedCell) else cell
            for name, p in inner.named_parameters():
                out[(i // directions, i % directions, name)] = p
        return out
    for name, p in layer.named_parameters():
        found = _TORCH_NAME.fullmatch(name)
        if found is None:
            raise ValueError(f"{type(layer).__name__}: a parameter {name!r} outside torch's names")
        out[(int(found[2]), 1 if found[3] else 0, found[1])] = p
    return out
