"""One time step of each standard cell, written as its equations.

Every function takes ``xp``, the input projection ``W_ih x_t + b_ih`` for this step, already
computed (the layers hoist it out of the time loop: one matmul over all steps), and does the one
remaining matmul, ``W_hh h + b_hh``, plus the gate maths. Gate order and conventions follow
``torch.nn`` so that its weights load unchanged: LSTM rows are (i, f, g, o), GRU rows (r, z, n).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def rnn_tanh_step(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """Elman step: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``. Shapes: xp (B, H), h (B, H)."""
    return torch.tanh(xp + F.linear(h, w_hh, b_hh))


def rnn_relu_step(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """Elman step with ReLU: ``h' = relu(W_ih x + b_ih + W_hh h + b_hh)``."""
    return torch.relu(xp + F.linear(h, w_hh, b_hh))


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
    i, f, g, o = (xp + F.linear(h, w_hh, b_hh)).chunk(4, -1)
    i = torch.sigmoid(i)  # input gate
    f = torch.sigmoid(f)  # forget gate
    g = torch.tanh(g)  # candidate cell
    o = torch.sigmoid(o)  # output gate
    c = f * c + i * g
    h = o * torch.tanh(c)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, c


def gru_step(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """GRU step (Cho et al. 2014) in torch's convention, where r gates ``W_hn h + b_hn``.

    ``r = σ(x_r + h_r)``, ``z = σ(x_z + h_z)``, ``n = tanh(x_n + r (W_hn h + b_hn))``,
    ``h' = (1 - z) n + z h``. Shapes: xp (B, 3H), h (B, H).
    """
    xr, xz, xn = xp.chunk(3, -1)
    hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, -1)
    r = torch.sigmoid(xr + hr)  # reset gate
    z = torch.sigmoid(xz + hz)  # update gate
    n = torch.tanh(xn + r * hn)  # candidate state
    return (1 - z) * n + z * h
