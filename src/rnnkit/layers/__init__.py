"""Layers: the time loop, stacking, directions, packing and state, built once for every cell."""

from rnnkit.layers.build import make_layer
from rnnkit.layers.recurrent import Recurrent
from rnnkit.layers.standard import GRU, LSTM, RNN
from rnnkit.layers.weight_drop import WeightDropGRU, WeightDropLSTM, WeightDropRNN

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Recurrent",
    "WeightDropGRU",
    "WeightDropLSTM",
    "WeightDropRNN",
    "make_layer",
]
