"""Cells: one time step each, the equations in code."""

from rnnkit.cells.layer_norm_lstm import LayerNormLSTMCell
from rnnkit.cells.standard import GRUCell, LSTMCell, RNNCell

__all__ = ["GRUCell", "LSTMCell", "LayerNormLSTMCell", "RNNCell"]
