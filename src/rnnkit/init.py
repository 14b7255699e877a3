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

Custom cells are left to their own constructors (``LayerNormLSTMCell(forget_bias=...)``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["forget_gate_bias_", "irnn_", "orthogonal_"]

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
