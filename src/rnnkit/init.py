"""Initialisations that decide how far a fresh recurrent network remembers.

Each helper changes a standard layer (``rnnkit.RNN``/``LSTM``/``GRU`` or their ``torch.nn``
namesakes) in place and returns it, so they chain::

    lstm = rnnkit.init.forget_gate_bias_(rnnkit.init.orthogonal_(rnnkit.LSTM(8, 64)), 1.0)

- ``orthogonal_``: every recurrent matrix ``W_hh`` (each gate's block separately) orthogonal,
  scaled by ``gain``: all singular values are ``gain``, so a linear recurrence neither shrinks nor
  grows the gradient (Saxe et al. 2014).
- ``irnn_``: the identity initialisation of ReLU RNNs (Le, Jaitly & Hinton 2015, "IRNN"):
  ``W_hh = scale * I``, biases zero, input weights ``N(0, input_std^2)``. With ``scale = 1`` a
  ReLU RNN starts out as an integrator: it copies its state forward unchanged.
- ``forget_gate_bias_``: the LSTM forget gate's bias (Gers et al. 2000; Jozefowicz et al. 2015
  recommend 1). torch's default init gives a forget gate near ``sigmoid(0) = 0.5``, so a fresh
  LSTM halves its cell state every step, and its gradients decay like ``0.5^t`` until training
  opens the gate; a bias ``b`` starts it at ``sigmoid(b)``. For a GRU the same helper sets the
  update gate ``z`` (in torch's convention ``h' = (1 - z) n + z h``, so ``z`` is the keep gate).
- ``chrono_``: chrono initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks
  warp time?", section 5): with dependencies expected up to ``T_max`` steps, the forget gate's
  bias ``b_f ~ log(U(1, T_max - 1))`` and the input gate's ``b_i = -b_f``, so that the memory's
  characteristic times spread over ``[1, T_max]`` instead of all starting near 2 steps. For a
  GRU the keep gate ``z`` gets ``log(U(1, T_max - 1))`` (torch's convention: there is no separate
  input gate, ``1 - z`` is it). Works on the standard layers and on the LSTM- and GRU-like cells
  unrolled by ``rnnkit.Recurrent`` (``rnnkit.LSTMCell``, ``GRUCell``, ``LayerNormLSTMCell``,
  ``LayerNormGRUCell``, also inside ``RegularisedCell``).

Other custom cells are left to their own constructors (``LayerNormLSTMCell(forget_bias=...)``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["chrono_", "forget_gate_bias_", "irnn_", "orthogonal_"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _layers(module: nn.Module) -> list[nn.RNNBase]:
    """The standard recurrent layers in ``module`` (itself, or its children)."""
    found = [m for m in module.modules() if isinstance(m, nn.RNNBase)]
    if not found:
        raise TypeError(
            f"{type(module).__name__} holds no RNN, LSTM or GRU layer; custom cells take their "
            "initialisation in their constructor"
        )
    return found


def _suffixes(layer: nn.RNNBase) -> list[str]:
    directions = ["", "_reverse"] if layer.bidirectional else [""]
    return [f"_l{k}{d}" for k in range(layer.num_layers) for d in directions]


@torch.no_grad()
def orthogonal_(module: nn.Module, gain: float = 1.0) -> nn.Module:
    """Make each gate's block of every ``weight_hh`` an orthogonal matrix times ``gain``."""
    for layer in _layers(module):
        gates = _GATES[layer.mode]
        for s in _suffixes(layer):
            w = getattr(layer, f"weight_hh{s}")
            for block in w.chunk(gates, 0):
                nn.init.orthogonal_(block, gain=gain)
    return module


@torch.no_grad()
def irnn_(module: nn.Module, scale: float = 1.0, input_std: float = 1e-3) -> nn.Module:
    """IRNN: ``W_hh = scale * I``, zero biases, input weights ``N(0, input_std^2)``.

    Meant for ReLU RNNs (``nonlinearity="relu"``); on a tanh RNN it is the same matrix, and the
    tanh's slope below 1 still makes the gradient shrink.
    """
    for layer in _layers(module):
        if layer.mode not in ("RNN_TANH", "RNN_RELU"):
            raise TypeError(f"irnn_ is for plain RNNs (ReLU), not {layer.mode}")
        if layer.proj_size:
            raise TypeError("irnn_ does not take projections")
        for s in _suffixes(layer):
            w_hh = getattr(layer, f"weight_hh{s}")
            w_hh.copy_(scale * torch.eye(w_hh.size(0), dtype=w_hh.dtype, device=w_hh.device))
            nn.init.normal_(getattr(layer, f"weight_ih{s}"), 0.0, input_std)
            for name in (f"bias_ih{s}", f"bias_hh{s}"):
                if hasattr(layer, name):
                    getattr(layer, name).zero_()
    return module


@torch.no_grad()
def forget_gate_bias_(module: nn.Module, value: float = 1.0) -> nn.Module:
    """Set the LSTM forget gate's total bias (``b_ih + b_hh``) to ``value``, or a GRU's update
    gate's; the input-side bias gets ``value`` and the recurrent side zero."""
    for layer in _layers(module):
        if layer.mode not in ("LSTM", "GRU"):
            raise TypeError(f"forget_gate_bias_ is for LSTM and GRU layers, not {layer.mode}")
        if not layer.bias:
            raise ValueError("this layer was built with bias=False: there is no bias to set")
        h = layer.hidden_size
        rows = slice(h, 2 * h)  # LSTM (i, f, g, o): f; GRU (r, z, n): z
        for s in _suffixes(layer):
            getattr(layer, f"bias_ih{s}")[rows] = value
            getattr(layer, f"bias_hh{s}")[rows] = 0.0
    return module


def _chrono_biases(module: nn.Module) -> list[tuple[str, Tensor, Tensor | None, int]]:
    """``(kind, input-side bias, recurrent-side bias or None, H)`` of every LSTM or GRU
    (layer and direction, or cell) in ``module``; ``kind`` is ``"LSTM"`` or ``"GRU"``."""
    from rnnkit.cells.layer_norm_gru import LayerNormGRUCell
    from rnnkit.cells.layer_norm_lstm import LayerNormLSTMCell

    found: list[tuple[str, Tensor, Tensor | None, int]] = []
    for m in module.modules():
        if isinstance(m, nn.RNNBase) and m.mode in ("LSTM", "GRU"):
            if not m.bias:
                raise ValueError("chrono_ sets biases, and this layer was built with bias=False")
            for s in _suffixes(m):
                found.append(
                    (m.mode, getattr(m, f"bias_ih{s}"), getattr(m, f"bias_hh{s}"), m.hidden_size)
                )
        elif isinstance(m, (nn.LSTMCell, nn.GRUCell)):
            if m.bias_ih is None:
                raise ValueError("chrono_ sets biases, and this cell was built with bias=False")
            kind = "LSTM" if isinstance(m, nn.LSTMCell) else "GRU"
            found.append((kind, m.bias_ih, m.bias_hh, m.hidden_size))
        elif isinstance(m, LayerNormLSTMCell):
            found.append(("LSTM", m.bias, None, m.hidden_size))
        elif isinstance(m, LayerNormGRUCell):
            found.append(("GRU", m.bias_ih, m.bias_hh, m.hidden_size))
    return found


@torch.no_grad()
def chrono_(module: nn.Module, max_dependency: int, generator: torch.Generator | None = None):
    """Chrono initialisation (module docstring): LSTM ``b_f ~ log(U(1, T_max - 1))``,
    ``b_i = -b_f``; GRU keep gate ``b_z ~ log(U(1, T_max - 1))``. The totals are put on the
    input-side bias and the recurrent side of those rows is zeroed (torch adds the two).

    Args:
        module: a layer, a model holding layers, or a ``Recurrent`` of LSTM/GRU-like cells.
        max_dependency: ``T_max``, the longest dependency expected, in steps (at least 2).
        generator: for the uniform draws (default: torch's global one).
    """
    if isinstance(max_dependency, bool) or not isinstance(max_dependency, int):
        raise ValueError(f"--max-dependency must be an integer, got {max_dependency!r}")
    if max_dependency < 2:
        raise ValueError(f"--init chrono needs --max-dependency >= 2, got {max_dependency}")
    found = _chrono_biases(module)
    if not found:
        raise TypeError(
            f"{type(module).__name__} holds no LSTM or GRU (layer or cell): chrono "
            "initialisation sets gate biases, and only gated cells with a forget gate have one"
        )
    for kind, b_in, b_rec, h in found:
        u = torch.empty(h, dtype=torch.float64).uniform_(
            1.0, max_dependency - 1.0, generator=generator
        )
        b_f = torch.log(u).to(b_in)
        gate = slice(h, 2 * h)  # LSTM (i, f, g, o): f; GRU (r, z, n): z, the keep gate
        b_in[gate] = b_f
        if kind == "LSTM":
            b_in[:h] = -b_f  # the input gate opens as much as the forget gate closes
        if b_rec is not None:
            b_rec[gate] = 0.0
            if kind == "LSTM":
                b_rec[:h] = 0.0
    return module
