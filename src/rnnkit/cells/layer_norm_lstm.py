"""A layer-normalised LSTM cell: the worked example of a custom cell.

Layer normalisation (Ba, Kiros & Hinton 2016, section 3.1 for RNNs) normalises the summed inputs
of each gate at every step, which steadies training on long sequences. The cell follows the
paper's LSTM variant: the input and recurrent projections are normalised separately, and the cell
state once more before the output tanh.

It is an ordinary ``nn.Module`` mapping ``(x_t, state) -> (y_t, state)``: hand it to
``rnnkit.Recurrent`` to get layers, directions, lengths and packing for free.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells.layer_norm_fused import layer_norm_lstm_sequence


class LayerNormLSTMCell(nn.Module):
    r"""LSTM cell with layer normalisation on the gate pre-activations and the cell state.

    .. math::
        i, f, g, o &= \mathrm{LN}(W_{ih} x_t) + \mathrm{LN}(W_{hh} h_{t-1}) + b \\
        c_t &= \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g) \qquad
        h_t = \sigma(o) \odot \tanh(\mathrm{LN}(c_t))

    Args:
        input_size: features of ``x_t``.
        hidden_size: H, the size of ``h_t`` and ``c_t``.
        forget_bias: added to the forget gate's bias at initialisation.

    Shapes: ``x_t`` (B, I); state ``(h, c)``, each (B, H); returns ``(h_t, (h_t, c_t))``.

    Example::

        >>> cell = LayerNormLSTMCell(8, 16)
        >>> y, (h, c) = cell(torch.randn(3, 8), cell.initial_state(3))
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        self.ln_ih = nn.LayerNorm(4 * hidden_size, bias=False)
        self.ln_hh = nn.LayerNorm(4 * hidden_size, bias=False)
        self.ln_c = nn.LayerNorm(hidden_size)
        bound = 1.0 / math.sqrt(hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)
        with torch.no_grad():
            self.bias[hidden_size : 2 * hidden_size] += forget_bias

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> tuple[Tensor, Tensor]:
        """Zero ``(h, c)``, each (B, H)."""
        h = torch.zeros(batch_size, self.hidden_size, dtype=dtype, device=device)
        return h, h.clone()

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = state  # (B, H) each
        gates = self.ln_ih(F.linear(x, self.weight_ih)) + self.ln_hh(F.linear(h, self.weight_hh))
        i, f, g, o = (gates + self.bias).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(self.ln_c(c))
        return h, (h, c)

    def sequence(
        self, x: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The whole ``(T, B, I)`` sequence at once: ``(hs, (h_T, c_T))``, hs (T, B, H).

        The same function as ``T`` calls of ``forward`` (to rounding), run by the fused engine of
        ``rnnkit.cells.layer_norm_fused``: the input side for all steps in one matmul and one
        layer norm, back-propagation through time written out. ``rnnkit.Recurrent`` uses it
        when no lengths and no per-step states are asked for.
        """
        return layer_norm_lstm_sequence(self, x, state)
