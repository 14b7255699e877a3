"""rnnkit: recurrent neural networks on PyTorch.

Drop-in ``torch.nn`` layers (``RNN``, ``LSTM``, ``GRU`` and their cells) with a readable
reference loop beside the fused kernels, ``lengths=``, per-step states, and ``Recurrent`` to
unroll any custom cell; the architectures built from them (``ManyToOne``, ``ManyToMany``,
``OneToMany``, ``Seq2Seq``).
"""

from rnnkit.architectures import ManyToMany, ManyToOne, OneToMany, Seq2Seq
from rnnkit.cells import GRUCell, LayerNormGRUCell, LayerNormLSTMCell, LSTMCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.state import State, StepStates, detach_state

__version__ = "0.1.0"


def load(run_dir, which: str = "best", device: str = "cpu"):
    """A trained run with ``predict``, ``stream`` (and ``sample`` for generators): see
    ``rnnkit.export.inference``. Imported on use, so ``import rnnkit`` stays light."""
    from rnnkit.export.inference import load as _load

    return _load(run_dir, which, device)


__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "LayerNormGRUCell",
    "LayerNormLSTMCell",
    "ManyToMany",
    "ManyToOne",
    "OneToMany",
    "RNNCell",
    "Recurrent",
    "Seq2Seq",
    "State",
    "StepStates",
    "__version__",
    "detach_state",
    "load",
]
