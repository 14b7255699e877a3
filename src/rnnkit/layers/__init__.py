"""Layers: the time loop, stacking, directions, packing and state, built once for every cell."""

from rnnkit.layers.build import make_layer
from rnnkit.layers.recurrent import Recurrent
from rnnkit.layers.standard import GRU, LSTM, RNN

__all__ = ["GRU", "LSTM", "RNN", "Recurrent", "make_layer"]
