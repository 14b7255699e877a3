r"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates from ``x_t`` only.

Their gates and candidate read the input alone, so the recurrence is linear in ``h``,

.. math:: h_t = a_t \odot h_{t-1} + b_t,

with ``a_t`` and ``b_t`` known for every step before the loop starts. In training the whole
sequence then runs as one parallel scan (``scan``); in generation the cell is an ordinary
constant-size step (``forward``), which ``rnnkit.Recurrent`` unrolls like any other cell.

Which variant: the paper's **log-space** version (section 3 and appendix B), in which the
candidate passes through :math:`g(v) = v + \tfrac12` for :math:`v \ge 0`, :math:`\sigma(v)`
otherwise, so that :math:`\tilde h_t > 0`. The step and the scan compute the same function (they
agree to rounding). How the scan runs departs from the paper's code without changing that
function: instead of a ``logcumsumexp`` over logarithms (slow on CPU, and in float32 it loses
precision once the cumulative log-coefficients reach the thousands at T = 4096), it is a
work-efficient parallel scan (Blelloch 1990) on the coefficients themselves, ``log2 T`` rounds of
whole-tensor products and sums with back-propagation written out (the adjoint is the same
recurrence run backwards). The coefficients lie in [0, 1], so only products that shrink are
formed: nothing overflows, float32 stays within ~1e-6 of a float64 loop at T = 4096, and the
initial state may be zero or negative. On the CPU with rnnkit's kernels built, the elementwise
gate maths before the scan and the projection's gradient after it are one C++ pass each
(``kernels/min_rnn.cpp``); elsewhere the PyTorch ops below give the same numbers to rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import kernels as native
from rnnkit.cells.kernels import dense
from rnnkit.cells.linear_scan import scan_into, scan_reverse_into


def _g(v: Tensor) -> Tensor:
    """The paper's positive candidate map: ``v + 0.5`` for ``v >= 0``, ``sigmoid(v)`` below.

    Written as ``sigmoid(min(v, 0)) + relu(v)`` (the same values to the bit) rather than with
    ``torch.where``, which on CPU runs about ten times slower than an elementwise product.
    """
    return torch.sigmoid(v.clamp_max(0)) + F.relu(v)


def _g_slope(v: Tensor, sig: Tensor) -> Tensor:
    """``g'(v)`` from ``sig = sigmoid(min(v, 0))``: 1 above zero, ``sigmoid'(v)`` at and below.

    ``max(sign(v), sig (1 - sig))`` picks 1 where ``v > 0`` and the sigmoid's slope (in
    [0, 1/4]) elsewhere, autograd's own choice at ``v = 0``, without a boolean mask.
    """
    slope = torch.addcmul(sig, sig, sig, value=-1)  # sig (1 - sig)
    return torch.maximum(slope, torch.sign(v), out=slope)


class _MinScan(torch.autograd.Function):
    r"""The whole sequence of a min-RNN from its input projection, back-propagation written out.

    Both cells have :math:`h_t = (1 - w_t) h_{t-1} + w_t \, g(k_t)` with one gate
    :math:`w = \sigma(u)`: minGRU's :math:`u = k_z`, minLSTM's
    :math:`u = \log i - \log f = \mathrm{softplus}(-k_f) - \mathrm{softplus}(-k_i)`. With the
    adjoint :math:`\lambda` (one reverse scan), :math:`\partial L / \partial u =
    \lambda \, w (1 - w) (g - h_{t-1})` and :math:`\partial L / \partial k =
    \lambda \, w \, g'(k)`; the gradient of the projection is written into one buffer, so
    autograd sees a single node for the gate maths and the scan (about twenty passes over the
    sequence in all, against about forty through autograd op by op).
    """

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, lstm: bool) -> Tensor:
        ctx.lstm = lstm
        ctx.kernels = native.usable(xp, h0)
        if h0.shape != (xp.shape[1], xp.shape[2] // (3 if lstm else 2)):
            ctx.kernels = None  # an h0 that broadcasts: the PyTorch ops below take it
        if ctx.kernels is not None:  # the gate maths in one pass each way (kernels/min_rnn.cpp)
            xp, h0 = xp.contiguous(), h0.contiguous()
            w, a, gk, sig_k, hs = ctx.kernels.min_rnn_forward(xp, lstm)
            hs[0].addcmul_(a[0], h0)  # h0 enters through step 0
            scan_into(a[1:], hs, hs)
            ctx.save_for_backward(h0, w, a, gk, sig_k, hs, xp)
            return hs
        # each block of the projection as its own contiguous tensor: on CPU, elementwise kernels
        # on a column slice of (T, B, 2H) run several times slower than on a whole tensor, and
        # there are a dozen of them; the copies cost one pass
        blocks = [b.contiguous() for b in xp.chunk(3 if lstm else 2, -1)]
        if lstm:
            k_f, k_i, k = blocks
            w = torch.sigmoid(F.softplus(-k_f) - F.softplus(-k_i))  # i / (f + i)
        else:
            u, k = blocks
            w = torch.sigmoid(u)  # update gate
        a = 1 - w
        sig_k = k.clamp_max(0).sigmoid_()
        gk = F.relu(k).add_(sig_k)  # g(k), the candidate, as _g computes it
        hs = w * gk  # b, scanned in place into the states: fresh memory costs page faults
        hs[0].addcmul_(a[0], h0)  # h0 enters through step 0
        scan_into(a[1:], hs, hs)  # (T, B, H)
        ctx.save_for_backward(h0, w, a, gk, sig_k, hs, *blocks)
        return hs

    @staticmethod
    def backward(ctx, grad: Tensor):
        # the inputs saved last: the projection (kernel path) or its blocks (PyTorch path)
        h0, w, a, gk, sig_k, hs, *inputs = ctx.saved_tensors
        # the adjoint, lambda_t = dL/dh_t + a_{t+1} lambda_{t+1}
        ops = ctx.kernels
        lam = torch.empty_like(hs) if ops is None else ops.sequence_buffer(list(hs.shape), hs.dtype)
        scan_reverse_into(a[1:], grad.contiguous(), lam)
        grad_h0 = a[0] * lam[0]
        if ops is not None:
            (xp,) = inputs
            grad_xp = ops.min_rnn_backward(xp, lam, w, a, gk, sig_k, hs, h0, ctx.lstm)
            return grad_xp, grad_h0, None
        lam_w = lam.mul_(w)  # lambda w; lam is not needed on its own any more
        du = torch.empty_like(hs)  # minLSTM: dL/du first, then spread over k_f and k_i below
        torch.sub(gk[1:], hs[:-1], out=du[1:])  # g - h_{t-1}
        torch.sub(gk[0], h0, out=du[0])
        du.mul_(lam_w).mul_(a)
        dk = lam_w.mul_(_g_slope(inputs[-1], sig_k))  # lam_w is spent
        if not ctx.lstm:
            return torch.cat([du, dk], -1), grad_h0, None
        k_f, k_i = inputs[0], inputs[1]  # du/dk_f = -sigmoid(-k_f), du/dk_i = sigmoid(-k_i)
        dk_i = torch.mul(du, torch.sigmoid(-k_i))
        dk_f = du.mul_(torch.sigmoid(-k_f)).neg_()
        return torch.cat([dk_f, dk_i, dk], -1), grad_h0, None


class _MinCell(nn.Module):
    """Parameters, state and the step/scan protocol shared by minGRU and minLSTM."""

    _gates: int  # blocks of H rows in weight_ih

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
        return dense.linear(x, self.weight_ih, self.bias_ih)

    def _coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)`` of ``h_t = a h_{t-1} + b`` from the projected input."""
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
        if x.size(0) == 0:
            return x.new_zeros(0, *h0.shape), h0
        hs = _MinScan.apply(self.project_input(x), h0, self._gates == 3)  # (T, B, H)
        return hs, hs[-1]

    def sequence(self, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """The time loop's whole-sequence hook (``rnnkit.layers.unroll``): the scan."""
        return self.scan(x, h0)


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
        # f' = 1 - i' exactly, the paper's f' + i' = 1
        w = torch.sigmoid(F.softplus(-k_f) - F.softplus(-k_i))  # i' = sigmoid(log i - log f)
        return 1 - w, w * _g(k_h)  # as the scan computes them, so the two agree to the bit
