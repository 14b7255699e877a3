r"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates from ``x_t`` only.

Their gates and candidate read the input alone, so the recurrence is linear in ``h``,

.. math:: h_t = a_t \odot h_{t-1} + b_t,

with ``a_t`` and ``b_t`` known for every step before the loop starts. In training the whole
sequence then runs as one parallel scan (``scan``); in generation the cell is an ordinary
constant-size step (``forward``), which ``rnnkit.Recurrent`` unrolls like any other cell.

Which variant: the paper's **log-space** version (section 3 and appendix B), in which the
candidate passes through :math:`g(v) = v + \tfrac12` for :math:`v \ge 0`, :math:`\sigma(v)`
otherwise, so that :math:`\tilde h_t > 0` and the scan can work on logarithms. The step and the
scan compute the same function (they agree to rounding). Two departures from the paper's code,
neither of which changes that function:

- the initial state enters the scan linearly (:math:`h_t = A_t h_0 + \dots` with
  :math:`A_t = \prod_{s \le t} a_s`) instead of through its logarithm, so ``h0`` may be zero
  (the default) or negative and is not passed through ``g``;
- the scan runs in chunks of ``scan_chunk`` steps, carrying the state from chunk to chunk, so
  that the cumulative log-coefficients stay small and float32 keeps its precision at T = 4096
  and beyond (the cost: ``T / scan_chunk`` sequential chunk steps instead of one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _g(v: Tensor) -> Tensor:
    """The paper's positive candidate map: ``v + 0.5`` for ``v >= 0``, ``sigmoid(v)`` below."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def _log_g(v: Tensor) -> Tensor:
    """``log(g(v))``; both branches are finite everywhere, so ``where`` passes no NaN gradient."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


def linear_scan(log_a: Tensor, log_b: Tensor, h0: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    r"""Solve :math:`h_t = a_t h_{t-1} + b_t` for every ``t`` from ``log a`` and ``log b``.

    Within a chunk, :math:`h_t = A_t h_0 + A_t \sum_{s \le t} b_s / A_s` with
    :math:`\log A_t` a cumulative sum and the sum a ``logcumsumexp`` (the paper's appendix B).

    Args:
        log_a: ``(T, B, H)``, the logarithms of the (positive) coefficients.
        log_b: ``(T, B, H)``, the logarithms of the (positive) inputs.
        h0: ``(B, H)``, the state before step 0, any sign.
        chunk: steps per chunk; the state is carried across chunks.

    Returns:
        ``(hs, h_T)``: every state ``(T, B, H)`` and the last ``(B, H)``.
    """
    h, out = h0, []
    for s in range(0, log_a.size(0), chunk):
        log_A = log_a[s : s + chunk].cumsum(0)  # (C, B, H)
        hs = torch.exp(log_A + torch.logcumsumexp(log_b[s : s + chunk] - log_A, 0))
        hs = hs + torch.exp(log_A) * h
        out.append(hs)
        h = hs[-1]
    if not out:
        return log_a.new_zeros(log_a.shape), h0
    return torch.cat(out), h


class _MinCell(nn.Module):
    """Parameters, state and the step/scan protocol shared by minGRU and minLSTM."""

    _gates: int  # blocks of H rows in weight_ih

    scan_chunk: int = 128
    """Steps per log-space chunk: small enough that float32 cumulative sums stay precise."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(self._gates * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(self._gates * hidden_size)) if bias else None
        bound = 1.0 / math.sqrt(hidden_size)  # torch's RNN-cell initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> Tensor:
        """The zero state ``h``, (B, H)."""
        return torch.zeros(
            batch_size,
            self.hidden_size,
            dtype=dtype or self.weight_ih.dtype,
            device=device or self.weight_ih.device,
        )

    def project_input(self, x: Tensor) -> Tensor:
        """All gate pre-activations, ``W_ih x + b_ih``, for any leading shape (one matmul)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def _coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)`` of ``h_t = a h_{t-1} + b`` from the projected input."""
        raise NotImplementedError

    def _log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """``(log a, log b)``, computed stably from the pre-activations."""
        raise NotImplementedError

    def step(self, xp: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step from a projected input ``xp`` (B, G): ``(h_t, h_t)``."""
        a, b = self._coefficients(xp)
        h = a * h + b
        return h, h

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step: ``x`` (B, I), ``h`` (B, H) or None for zeros; returns ``(h_t, h_t)``."""
        if h is None:
            h = self.initial_state(x.size(0), dtype=x.dtype, device=x.device)
        return self.step(self.project_input(x), h)

    def scan(self, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """The whole sequence at once: ``x`` (T, B, I), ``h0`` (B, H) -> ``(ys, h_T)``.

        ``ys`` (T, B, H) equals what ``T`` calls of ``forward`` give, up to rounding.
        """
        log_a, log_b = self._log_coefficients(self.project_input(x))
        return linear_scan(log_a, log_b, h0, self.scan_chunk)


class MinGRUCell(_MinCell):
    r"""minGRU (Feng et al. 2024, log-space variant): an update gate and a candidate from ``x_t``.

    .. math::
        z_t = \sigma(W_z x_t + b_z) \qquad \tilde h_t = g(W_h x_t + b_h) \\
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    with :math:`g(v) = v + \tfrac12` for :math:`v \ge 0`, :math:`\sigma(v)` otherwise.

    Args:
        input_size: features of ``x_t``, I.
        hidden_size: H, the size of ``h_t``.
        bias: learn ``b_z`` and ``b_h``.

    Parameters: ``weight_ih`` (2H, I) stacking ``W_z, W_h``; ``bias_ih`` (2H).
    Shapes: ``x_t`` (B, I), ``h`` (B, H); ``forward`` returns ``(h_t, h_t)``; ``scan`` takes
    ``(T, B, I)``.

    Example::

        >>> cell = MinGRUCell(8, 16)
        >>> ys, h = cell.scan(torch.randn(100, 3, 8), cell.initial_state(3))  # (100, 3, 16)
        >>> y, h = cell(torch.randn(3, 8), h)                                  # one more step
    """

    _gates = 2

    def _coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k_z, k_h = xp.chunk(2, -1)
        z = torch.sigmoid(k_z)  # update gate
        return 1 - z, z * _g(k_h)

    def _log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k_z, k_h = xp.chunk(2, -1)
        # log(1 - sigmoid(k)) = -softplus(k), log(sigmoid(k)) = -softplus(-k): no log(0)
        return -F.softplus(k_z), -F.softplus(-k_z) + _log_g(k_h)


class MinLSTMCell(_MinCell):
    r"""minLSTM (Feng et al. 2024, log-space variant): normalised forget and input gates.

    .. math::
        f_t = \sigma(W_f x_t + b_f) \qquad i_t = \sigma(W_i x_t + b_i) \qquad
        \tilde h_t = g(W_h x_t + b_h) \\
        f'_t = \frac{f_t}{f_t + i_t} \qquad i'_t = \frac{i_t}{f_t + i_t} \qquad
        h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

    with :math:`g` as in :class:`MinGRUCell`. The normalisation makes :math:`f' + i' = 1`
    (the paper's time-independent scale).

    Args:
        input_size: features of ``x_t``, I.
        hidden_size: H, the size of ``h_t``.
        bias: learn ``b_f``, ``b_i`` and ``b_h``.

    Parameters: ``weight_ih`` (3H, I) stacking ``W_f, W_i, W_h``; ``bias_ih`` (3H).
    Shapes: as :class:`MinGRUCell`.

    Example::

        >>> cell = MinLSTMCell(8, 16)
        >>> ys, h = cell.scan(torch.randn(100, 3, 8), cell.initial_state(3))
    """

    _gates = 3

    def _coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, k_h = xp.chunk(3, -1)
        # f / (f + i) = sigmoid(log f - log i), so f' + i' = 1 holds to rounding
        d = F.softplus(-k_f) - F.softplus(-k_i)  # log i - log f
        return torch.sigmoid(-d), torch.sigmoid(d) * _g(k_h)

    def _log_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, k_h = xp.chunk(3, -1)
        d = F.softplus(-k_f) - F.softplus(-k_i)  # log i - log f
        return -F.softplus(d), -F.softplus(-d) + _log_g(k_h)
