"""One time step of each standard cell, written as its equations: the only copy of the gate maths.

Every ``*_step`` takes ``xp``, the input projection ``W_ih x_t + b_ih`` for this step, already
computed (the layers hoist it out of the time loop: one matmul over all steps), and does the one
remaining matmul, ``W_hh h + b_hh``, plus the gate maths. Gate order and conventions follow
``torch.nn`` so that its weights load unchanged: LSTM rows are (i, f, g, o), GRU rows (r, z, n).

The gate maths itself (``lstm_gates``, ``lstm_update``, ``gru_gates``, ``gru_update``,
``ACTIVATIONS``) takes the pre-activations however they were computed, so that the fast stepper
(``rnnkit.decoding.stepper``, with its precomputed tables) and the gate statistics
(``rnnkit.diagnose.gates``) run these very lines. Each is written with as few kernels as the
equation allows (one sigmoid over all of an LSTM's gates, ``addcmul`` for the products): one
step at a time, kernel launches, not arithmetic, take most of the time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

ACTIVATIONS = {"RNN_TANH": torch.tanh, "RNN_RELU": torch.relu}
"""The Elman cell's nonlinearity, by ``torch.nn.RNN`` mode."""


def rnn_tanh_step(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """Elman step: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``. Shapes: xp (B, H), h (B, H)."""
    return torch.tanh(xp + F.linear(h, w_hh, b_hh))


def rnn_relu_step(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """Elman step with ReLU: ``h' = relu(W_ih x + b_ih + W_hh h + b_hh)``."""
    return torch.relu(xp + F.linear(h, w_hh, b_hh))


def lstm_gates(gates: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``σ(i), σ(f), tanh(g), σ(o)`` from the pre-activations ``(..., 4H)``, rows (i, f, g, o)."""
    H = gates.size(-1) // 4
    act = torch.sigmoid(gates)  # one kernel for i, f and o (g's slice of it goes unused)
    i, f, o = act[..., :H], act[..., H : 2 * H], act[..., 3 * H :]  # input, forget, output
    g = torch.tanh(gates[..., 2 * H : 3 * H])  # candidate cell
    return i, f, g, o


def lstm_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')`` from pre-activations ``(B, 4H)``
    and the cell state ``c`` ``(B, H)``; returns ``(h', c')``."""
    i, f, g, o = lstm_gates(gates)
    c = torch.addcmul(f * c, i, g)
    return o * torch.tanh(c), c


def lstm_step(
    xp: Tensor,
    state: tuple[Tensor, Tensor],
    w_hh: Tensor,
    b_hh: Tensor | None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    ``i, f, g, o = split(xp + W_hh h + b_hh)``; ``c' = σ(f) c + σ(i) tanh(g)``;
    ``h' = σ(o) tanh(c')``, then ``h' = W_hr h'`` when a projection is given (Sak et al. 2014).
    Shapes: xp (B, 4H), h (B, P or H), c (B, H).
    """
    h, c = state
    h, c = lstm_update(xp + F.linear(h, w_hh, b_hh), c)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, c


def gru_gates(xp: Tensor, hp: Tensor) -> tuple[Tensor, Tensor]:
    """The reset and update gates ``r = σ(x_r + h_r)``, ``z = σ(x_z + h_z)``, each ``(..., H)``,
    from the input part ``xp`` and the state part ``hp`` of the pre-activations ``(..., 3H)``."""
    H = xp.size(-1) // 3
    rz = torch.sigmoid(xp[..., : 2 * H] + hp[..., : 2 * H])  # one kernel for both gates
    return rz[..., :H], rz[..., H:]


def gru_update(xp: Tensor, hp: Tensor, h: Tensor) -> Tensor:
    """``n = tanh(x_n + r h_n)``, ``h' = (1 - z) n + z h`` from the input part ``xp`` and the
    state part ``hp`` (``W_hh h + b_hh``) of the pre-activations ``(B, 3H)``."""
    H = h.size(-1)
    r, z = gru_gates(xp, hp)
    n = torch.tanh(torch.addcmul(xp[..., 2 * H :], r, hp[..., 2 * H :]))  # candidate state
    return n + z * (h - n)  # (1 - z) n + z h, one operation fewer


def gru_step(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """GRU step (Cho et al. 2014) in torch's convention, where r gates ``W_hn h + b_hn``.

    ``r = σ(x_r + h_r)``, ``z = σ(x_z + h_z)``, ``n = tanh(x_n + r (W_hn h + b_hn))``,
    ``h' = (1 - z) n + z h``. Shapes: xp (B, 3H), h (B, H).
    """
    return gru_update(xp, F.linear(h, w_hh, b_hh), h)
