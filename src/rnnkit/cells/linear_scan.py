r"""The parallel scan of a recurrence that is linear in its state, :math:`h_t = a_t h_{t-1} + b_t`.

Cells whose gates read only the input (minGRU, minLSTM) know every ``a_t`` and ``b_t`` before the
loop starts, so a whole sequence is one scan instead of ``T`` Python steps. The scan here is
Blelloch's work-efficient one (Blelloch 1990, "Prefix sums and their applications"): fold
neighbouring steps into pairs, :math:`(a, b) \circ (a', b') = (a a', a b' + b)`, scan the
half-length sequence of pairs, then fill in the steps between. Each of the ``log2 T`` rounds is a
few whole-tensor operations on strided views of the time axis, so a sequence costs about
``4 log2 T`` kernel launches and ``2 T`` elements of work.

Why not the log-space ``logcumsumexp`` of Heinsen (2023) that the minGRU paper uses: on CPU
``logcumsumexp`` and its backward run element by element (about 60 ms forward for 4096 x 512
floats here, ten times an elementwise product), and in float32 the cumulative log-coefficients
reach the thousands at T = 4096, where their rounding error, exponentiated, exceeds 1e-4. The
scan here forms only products of the coefficients (no division, no logarithm): with coefficients
in [0, 1] they can only shrink, so nothing overflows and float32 stays within a few ulps per
round at any length.

The adjoint of the recurrence is the same recurrence run backwards in time,
:math:`\lambda_t = \partial L / \partial h_t + a_{t+1} \lambda_{t+1}`, so back-propagation is
one more scan (``scan_reverse``) and a few products.
"""

from __future__ import annotations

import torch
from torch import Tensor


def scan_into(a: Tensor, b: Tensor, out: Tensor) -> None:
    r"""Write :math:`o_t = a_t o_{t-1} + b_t` for ``t = 0 .. T-1`` (with :math:`o_{-1} = 0`).

    Args:
        a: ``(T - 1, ...)``, the coefficients of steps ``1 .. T-1`` (step 0 has no predecessor).
        b: ``(T, ...)``, the inputs; fold an initial state in as ``b_0 + a_0 h_0``.
        out: ``(T, ...)``, written in place; any strides; it may be ``b`` itself (each entry of
            ``b`` is read before its place in ``out`` is written), not a part of ``a``.
    """
    T = b.size(0)
    if T == 1:
        out.copy_(b)
        return
    n = T // 2  # pairs (0, 1), (2, 3), ...; their right ends are the odd steps
    odd = out[1 : 2 * n : 2]
    pair_b = torch.addcmul(b[1 : 2 * n : 2], a[0 : 2 * n - 1 : 2], b[0 : 2 * n : 2])
    pair_a = a[2 : 2 * n - 1 : 2] * a[1 : 2 * n - 2 : 2]  # pairs 1 .. n-1
    scan_into(pair_a, pair_b, odd)
    out[0].copy_(b[0])
    torch.addcmul(b[2 : 2 * n : 2], a[1 : 2 * n - 1 : 2], odd[:-1], out=out[2 : 2 * n : 2])
    if T % 2:  # the unpaired last step
        torch.addcmul(b[T - 1], a[T - 2], out[T - 2], out=out[T - 1])


def scan_reverse_into(c: Tensor, g: Tensor, out: Tensor) -> None:
    r"""Write :math:`o_t = c_t o_{t+1} + g_t` for ``t = T-1 .. 0`` (with :math:`o_T = 0`).

    The mirror image of :func:`scan_into`, on the same ascending views (no flipped copies).

    Args:
        c: ``(T - 1, ...)``, the coefficients of steps ``0 .. T-2`` (step ``T-1`` has no
            successor). For the adjoint of ``h_t = a_t h_{t-1} + b_t`` this is ``a[1:]``.
        g: ``(T, ...)``, the inputs.
        out: ``(T, ...)``, written in place; any strides, not overlapping ``c`` or ``g``.
    """
    T = g.size(0)
    if T == 1:
        out.copy_(g)
        return
    o, n = T % 2, T // 2  # pairs (o, o+1), (o+2, o+3), ...; their left ends come first in reverse
    left = out[o : o + 2 * n : 2]
    pair_g = torch.addcmul(g[o : o + 2 * n : 2], c[o : o + 2 * n - 1 : 2], g[o + 1 : T : 2])
    pair_c = c[o : o + 2 * n - 2 : 2] * c[o + 1 : o + 2 * n - 2 : 2]  # pairs 0 .. n-2
    scan_reverse_into(pair_c, pair_g, left)
    out[T - 1].copy_(g[T - 1])
    right = slice(o + 1, T - 1, 2)  # right ends of all pairs but the last
    torch.addcmul(g[right], c[right], left[1:], out=out[right])
    if o:  # the unpaired first step
        torch.addcmul(g[0], c[0], out[1], out=out[0])


class _LinearScan(torch.autograd.Function):
    """``h_t = a_t h_{t-1} + b_t`` over the whole sequence, back-propagation written out."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        hs = b.clone(memory_format=torch.contiguous_format)
        hs[0].addcmul_(a[0], h0)  # h0 enters through step 0
        scan_into(a[1:], hs, hs)  # (T, B, H), in place
        ctx.save_for_backward(a, h0, hs)
        return hs

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, h0, hs = ctx.saved_tensors
        lam = torch.empty_like(hs)  # lambda_t = dL/dh_t + a_{t+1} lambda_{t+1} = dL/db_t
        scan_reverse_into(a[1:], grad, lam)
        grad_a = torch.empty_like(lam)  # lambda_t h_{t-1}
        torch.mul(lam[0], h0, out=grad_a[0])
        torch.mul(lam[1:], hs[:-1], out=grad_a[1:])
        return grad_a, lam, a[0] * lam[0]


def linear_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    r"""Every state of :math:`h_t = a_t \odot h_{t-1} + b_t`, differentiable in all three inputs.

    Args:
        a: ``(T, B, H)``, the coefficients; the scan is stable for values in [0, 1] (larger
            values grow as the step loop's own products do).
        b: ``(T, B, H)``, the inputs.
        h0: ``(B, H)``, the state before step 0, any sign.

    Returns:
        ``(T, B, H)``, equal to the step loop's states up to rounding.
    """
    if a.shape != b.shape or a.shape[1:] != h0.shape:
        raise ValueError(
            f"linear_scan needs a and b of one shape (T, B, H) and h0 (B, H), "
            f"got {tuple(a.shape)}, {tuple(b.shape)}, {tuple(h0.shape)}"
        )
    if a.size(0) == 0:
        return b.clone()
    return _LinearScan.apply(a, b, h0)
