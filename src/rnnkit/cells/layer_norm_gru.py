"""A layer-normalised GRU cell.

Layer normalisation (Ba, Kiros & Hinton 2016, section 3.1 for RNNs) normalises the summed inputs
of each gate at every step, which steadies training on long sequences. As in
``LayerNormLSTMCell``, the input and the recurrent projections are normalised separately; the
gate maths after that is the GRU's own, ``rnnkit.cells.functional.gru_update``, in torch's
convention where the reset gate scales the whole recurrent part of the candidate (normalised
projection and its bias).

It is an ordinary ``nn.Module`` mapping ``(x_t, h) -> (h_t, h_t)``: hand it to
``rnnkit.Recurrent`` to get layers, directions, lengths and packing for free.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells.functional import gru_update
from rnnkit.cells.layer_norm_fused import layer_norm_gru_sequence


class LayerNormGRUCell(nn.Module):
    r"""GRU cell with layer normalisation on the input and recurrent gate pre-activations.

    .. math::
        a &= \mathrm{LN}(W_{ih} x_t) + b_{ih} \qquad
        u = \mathrm{LN}(W_{hh} h_{t-1}) + b_{hh}
        \qquad \text{rows } (r, z, n) \\
        r &= \sigma(a_r + u_r) \qquad z = \sigma(a_z + u_z) \\
        n &= \tanh(a_n + r \odot u_n) \qquad h_t = (1 - z) \odot n + z \odot h_{t-1}

    Each ``LN`` normalises all 3H rows of its projection together, with a learned gain and no
    shift of its own (the biases ``b_ih``, ``b_hh`` are the shift).

    Args:
        input_size: features of ``x_t``.
        hidden_size: H, the size of ``h_t``.

    Shapes: ``x_t`` (B, I); state ``h`` (B, H); returns ``(h_t, h_t)``.

    Example::

        >>> cell = LayerNormGRUCell(8, 16)
        >>> y, h = cell(torch.randn(3, 8), cell.initial_state(3))
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.zeros(3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.zeros(3 * hidden_size))
        self.ln_ih = nn.LayerNorm(3 * hidden_size, bias=False)
        self.ln_hh = nn.LayerNorm(3 * hidden_size, bias=False)
        bound = 1.0 / math.sqrt(hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> Tensor:
        """Zero ``h``, (B, H)."""
        return torch.zeros(batch_size, self.hidden_size, dtype=dtype, device=device)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        xp = self.ln_ih(F.linear(x, self.weight_ih)) + self.bias_ih  # (B, 3H)
        hp = self.ln_hh(F.linear(h, self.weight_hh)) + self.bias_hh  # (B, 3H)
        h = gru_update(xp, hp, h)  # (B, H)
        return h, h

    def sequence(self, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """The whole ``(T, B, I)`` sequence at once: ``(hs, h_T)``, hs (T, B, H).

        The same function as ``T`` calls of ``forward`` (to rounding), run by the fused engine of
        ``rnnkit.cells.layer_norm_fused``: the input side for all steps in one matmul and one
        layer norm, back-propagation through time written out. ``rnnkit.Recurrent`` uses it
        when no lengths and no per-step states are asked for.
        """
        return layer_norm_gru_sequence(self, x, h0)
