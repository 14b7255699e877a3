"""Cells: one time step each, the equations in code; ``registry`` names them for ``--cell``."""

from rnnkit.cells.layer_norm_gru import LayerNormGRUCell
from rnnkit.cells.layer_norm_lstm import LayerNormLSTMCell
from rnnkit.cells.registry import CellError, cell_names, get_cell, register_cell
from rnnkit.cells.regularisers import RegularisedCell
from rnnkit.cells.standard import GRUCell, LSTMCell, RNNCell

__all__ = [
    "CellError",
    "GRUCell",
    "LSTMCell",
    "LayerNormGRUCell",
    "LayerNormLSTMCell",
    "RNNCell",
    "RegularisedCell",
    "cell_names",
    "get_cell",
    "register_cell",
]
