r"""Whole-sequence engines for the layer-normalised LSTM and GRU, back-propagation written out.

The GRU engine also runs torch.nn.GRU's plain GRU (``gru_sequence`` with ``g_hh`` None: the
recurrent side is ``W_hh h + b_hh``, one ``addmm``, with no norm), which ``rnnkit.GRU(...,
backend="fused")`` uses on the CPU because torch's own CPU GRU runs op by op per step.

Unrolled op by op through autograd, a layer-normalised cell records some twenty nodes per step,
and the backward pass replays them one by one, each with its own small allocations; that made
``Recurrent(LayerNormLSTMCell)`` 2-4x slower than ``torch.nn.LSTM``. Here the time loop runs
inside one ``torch.autograd.Function`` per layer and direction:

- everything that depends on the input alone runs once for the whole sequence before the loop:
  the input projection (one matmul, through ordinary autograd) and its layer norm (the LSTM's
  inside the function: in the C++ loop's row pass, forward and backward, where it runs);
- each forward step is only ``h @ W_hh^T``, one fused layer norm (``torch.native_layer_norm``,
  which also returns the mean and reciprocal deviation the backward needs) and the gate maths,
  writing into buffers allocated once for the whole sequence;
- each backward step is the chain rule for one step with the per-step factors that do not
  depend on the incoming gradient (the gate derivatives) precomputed for the whole sequence
  after the forward loop, so a backward step is about ten kernels;
- the weight gradients are whole-sequence products after the loop: ``dW_hh`` one matmul over
  all steps, the layer-norm gains and shifts one reduction each.

Where the time loop runs: on the CPU in float32 or float64, in C++
(``rnnkit/cells/kernels/layer_norm_rnn.cpp``, compiled at first use and cached, see
``rnnkit.cells.kernels``): per step one matmul and one fused pass over the batch rows for the
rest of the step, forward and backward, because at H 128-256 the ten small kernels a PyTorch
step dispatches, and the Python between them, cost more than the maths. Everywhere else (CUDA,
other dtypes, ``RNNKIT_KERNELS=0``, no compiler) the PyTorch loops below run; they save the same
buffers, so the input side before the loop and ``dW_hh`` after it (``_w_hh_grad``) are shared
(the kernels sum the norms' gain and shift gradients inside their loop), and both give the same
numbers to rounding (``tests/test_cell_kernels.py``).

There is no per-step masking: the engines run only without ``lengths`` (the layers fall back to
the readable reference loop otherwise). Under ``torch.no_grad`` the forward loop keeps only the
outputs, and computes the input side a few steps at a time (``_InputByChunks``). The readable
cells (``LayerNormLSTMCell.forward``, ``LayerNormGRUCell.forward``) remain the definition;
``tests/test_fast_cells.py`` checks these engines against them, forward and backward, and with
``gradcheck`` in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells import kernels as native
from rnnkit.cells.kernels import dense

_ln = torch.native_layer_norm
_ln_backward = torch.ops.aten.native_layer_norm_backward


class _InputByChunks:
    """The input side of a forward-only run, computed a few steps at a time as the loop needs it.

    Indexed by step like the whole-sequence tensor it stands for. A whole-sequence tensor of tens
    of megabytes is handed fresh pages by the allocator every call, one page fault per 4 kB;
    chunks of about 4 MB are recycled from the heap instead.
    """

    def __init__(self, fn: Callable[[int, int], Tensor], T: int, B: int, G: int) -> None:
        self.fn, self.shape = fn, (T, B, G)
        self.steps = dense.chunk_steps(B * G)
        self.start, self.chunk = 0, None

    def __getitem__(self, t: int) -> Tensor:
        if self.chunk is None or not self.start <= t < self.start + self.steps:
            self.start = t - t % self.steps
            self.chunk = self.fn(self.start, min(self.start + self.steps, self.shape[0]))
        return self.chunk[t - self.start]


def _lstm_forward(xg, h0, c0, w_hh, g_hh, g_c, b_c, eps_hh, eps_c, save):
    """The forward loop; with ``save``, also every buffer the backward needs."""
    T, B, G = xg.shape
    H = G // 4
    w_t = w_hh.t()
    hs = h0.new_empty(T, B, H)  # every h_t, the output
    if save:
        hp = xg.new_empty(T, B, G)  # h_{t-1} @ W_hh^T, the recurrent layer norm's input
        act = xg.new_empty(T, B, G)  # sigma(i), sigma(f), tanh(g), sigma(o)
        cs = xg.new_empty(T, B, H)  # every c_t
        tc = xg.new_empty(T, B, H)  # tanh(LN(c_t))
    stats: list[list[Tensor]] = [[], [], [], []]  # mean and rstd of both layer norms, per step
    h, c = h0, c0
    for t in range(T):
        p = torch.mm(h, w_t, out=hp[t]) if save else torch.mm(h, w_t)
        n, mean, rstd = _ln(p, (G,), g_hh, None, eps_hh)
        gates = n.add_(xg[t])  # (B, 4H)
        # one sigmoid over all four blocks (g's is overwritten), as lstm_gates does
        a = torch.sigmoid(gates, out=act[t]) if save else torch.sigmoid(gates)
        torch.tanh(gates[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])
        c_new = cs[t] if save else torch.empty_like(c)
        torch.mul(a[:, H : 2 * H], c, out=c_new)
        c = c_new.addcmul_(a[:, :H], a[:, 2 * H : 3 * H])  # f c + i g
        y, mean_c, rstd_c = _ln(c, (H,), g_c, b_c, eps_c)
        tanh_c = torch.tanh(y, out=tc[t]) if save else y.tanh_()
        h = torch.mul(a[:, 3 * H :], tanh_c, out=hs[t])
        if save:
            for kept, value in zip(stats, (mean, rstd, mean_c, rstd_c)):
                kept.append(value)
    if not save:
        return hs, c, None
    return hs, c, (hp, act, cs, tc, *(torch.stack(s) for s in stats))


class _LayerNormLSTM(torch.autograd.Function):
    """The layer from the raw input side ``x_raw = W_ih x`` (T, B, 4H) on: its norm
    ``LN(x_raw) g_ih + b_ih``, the time loop, and their gradients."""

    @staticmethod
    def forward(ctx, x_raw, h0, c0, w_hh, g_hh, g_c, b_c, g_ih, b_ih, eps_hh, eps_c, eps_ih,
                kernels):  # fmt: skip
        ctx.kernels = kernels
        if kernels is not None:  # the input side's norm is folded into the loop's row pass
            hs = kernels.sequence_buffer([x_raw.shape[0], *h0.shape], h0.dtype)
            packed = dense.packed_for_steps(w_hh, h0.shape[0])
            c_T, *saved = kernels.lstm_forward(x_raw, h0, c0, w_hh, g_hh, g_c, b_c, eps_hh, eps_c,
                                               hs, True, packed, g_ih, b_ih, eps_ih,
                                               None)  # fmt: skip
        else:
            G = x_raw.shape[-1]
            xg, mean_x, rstd_x = _ln(x_raw, (G,), g_ih, b_ih, eps_ih)
            hs, c_T, saved = _lstm_forward(xg, h0, c0, w_hh, g_hh, g_c, b_c, eps_hh, eps_c, True)
            saved = (*saved, mean_x, rstd_x)
        ctx.save_for_backward(x_raw, h0, c0, w_hh, g_hh, g_c, b_c, g_ih, b_ih, hs, *saved)
        return hs, c_T

    @staticmethod
    def backward(ctx, grad_hs, grad_c_T):
        x_raw, h0, c0, w_hh, g_hh, g_c, b_c, g_ih, b_ih, hs, hp, act, cs, tc, *stats = (
            ctx.saved_tensors
        )
        mean, rstd, mean_c, rstd_c, mean_x, rstd_x = stats  # (T, B, 1) each
        stats = stats[:4]  # the loop's own norms
        T, B, H = hs.shape
        G = 4 * H
        if ctx.kernels is not None:
            grad_hs = torch.zeros_like(hs) if grad_hs is None else grad_hs.contiguous()
            grad_c_T = torch.zeros_like(c0) if grad_c_T is None else grad_c_T.contiguous()
            # the kernel sums the norms' gain and shift gradients as it goes, and takes the
            # input side's norm's chain rule in its row pass: grad_x is dL/d(x_raw)
            packed_t = dense.packed_for_steps(w_hh.t(), h0.shape[0])
            grad_x, dh, dc, grad_hp, *norms = ctx.kernels.lstm_backward(
                grad_hs, grad_c_T, h0, c0, w_hh, g_hh, g_c, hp, act, cs, tc, *stats, packed_t,
                x_raw, g_ih, mean_x, rstd_x,
            )  # fmt: skip
            grad_w_hh = _w_hh_grad(grad_hp, hs, h0)
            return grad_x, dh, dc, grad_w_hh, *norms, None, None, None, None
        # The per-step factors that do not depend on the incoming gradient, for all steps at
        # once and in one buffer (fresh memory is costly: every new page is a fault): the
        # pre-activations' gradients are dc * fac[:, :, :3H] for i, f, g and dh * fac[..., 3H:]
        # for o, the layer norm of c gets dh * dy_dh.
        fac = torch.addcmul(act, act, act, value=-1)  # a (1 - a): the sigmoids' slopes
        i, g, o = act[..., :H], act[..., 2 * H : 3 * H], act[..., 3 * H :]
        torch.mul(g, g, out=fac[..., 2 * H : 3 * H]).neg_().add_(1)  # tanh's slope, 1 - g^2
        fac[..., :H].mul_(g)
        fac[1:, :, H : 2 * H].mul_(cs[:-1])  # c_{t-1}
        fac[0, :, H : 2 * H].mul_(c0)
        fac[..., 2 * H : 3 * H].mul_(i)
        fac[..., 3 * H :].mul_(tc)
        dy_dh = torch.mul(tc, tc).neg_().add_(1).mul_(o)  # o (1 - tanh^2)
        f = act[..., H : 2 * H]
        grad_xg = hs.new_empty(T, B, G)  # dL/d(gates), which is also dL/d(xg)
        dys = hs.new_empty(T, B, H)  # dL/d(LN(c_t)), for the c layer norm's gain and shift
        grad_hp: list[Tensor] = [hs] * T  # placeholders, all overwritten
        dh = torch.zeros_like(h0)
        dc = grad_c_T.clone() if grad_c_T is not None else torch.zeros_like(c0)
        mask = (True, False, False)  # the input's gradient only; the weights' come at the end
        for t in range(T - 1, -1, -1):
            if grad_hs is not None:
                dh.add_(grad_hs[t])
            dy = torch.mul(dh, dy_dh[t], out=dys[t])
            dc.add_(_ln_backward(dy, cs[t], (H,), mean_c[t], rstd_c[t], g_c, b_c, mask)[0])
            gx = grad_xg[t]
            torch.mul(
                fac[t, :, : 3 * H].view(B, 3, H), dc.unsqueeze(1), out=gx[:, : 3 * H].view(B, 3, H)
            )
            torch.mul(dh, fac[t, :, 3 * H :], out=gx[:, 3 * H :])
            dc.mul_(f[t])
            dp = _ln_backward(gx, hp[t], (G,), mean[t], rstd[t], g_hh, None, mask)[0]
            grad_hp[t] = dp
            dh = torch.mm(dp, w_hh)
        # fac is spent: reuse its pages (fresh memory costs a fault per page)
        grad_hp = torch.stack(grad_hp, out=fac.view(T, B, G))  # (T, B, 4H)
        weights = _lstm_weight_grads(grad_hp, grad_xg, dys, hs, h0, hp, cs, *stats)
        grad_x, grad_g_ih, grad_b_ih = _ln_backward(
            grad_xg, x_raw, (G,), mean_x, rstd_x, g_ih, b_ih, (True, True, True)
        )
        return grad_x, dh, dc, *weights, grad_g_ih, grad_b_ih, None, None, None, None


def _w_hh_grad(grad_hp: Tensor, hs: Tensor, h0: Tensor) -> Tensor:
    """dW_hh = sum_t dL/d(W_hh h_{t-1}) h_{t-1}^T: one matmul over all steps."""
    G, H = grad_hp.shape[-1], hs.shape[-1]
    grad_w_hh = grad_hp[1:].reshape(-1, G).t().mm(hs[:-1].reshape(-1, H))
    return grad_w_hh.addmm_(grad_hp[0].t(), h0)


def _lstm_weight_grads(grad_hp, grad_xg, dys, hs, h0, hp, cs, mean, rstd, mean_c, rstd_c):
    """dW_hh, the recurrent norm's gain, the cell norm's gain and shift: whole-sequence sums.

    ``grad_hp`` is reused (read first) and ``dys`` overwritten.
    """
    grad_w_hh = _w_hh_grad(grad_hp, hs, h0)
    n_hp = torch.sub(hp, mean, out=grad_hp).mul_(rstd)  # the normalised W_hh h_{t-1}
    grad_g_hh = n_hp.mul_(grad_xg).sum((0, 1))
    grad_b_c = dys.sum((0, 1))
    grad_g_c = dys.mul_(torch.sub(cs, mean_c).mul_(rstd_c)).sum((0, 1))
    return grad_w_hh, grad_g_hh, grad_g_c, grad_b_c


def layer_norm_lstm_sequence(cell, x: Tensor, state: tuple[Tensor, Tensor]):
    """``LayerNormLSTMCell`` over a whole ``(T, B, I)`` sequence: ``(hs, (h_T, c_T))``."""
    h0, c0 = state
    G = 4 * cell.hidden_size

    def input_side(x: Tensor) -> Tensor:  # LN(W_ih x) gamma + b, the bias as the norm's shift
        return F.layer_norm(dense.linear(x, cell.weight_ih), (G,), cell.ln_ih.weight, cell.bias,
                            cell.ln_ih.eps)  # fmt: skip

    weights = (cell.weight_hh, cell.ln_hh.weight, cell.ln_c.weight, cell.ln_c.bias)
    eps = (cell.ln_hh.eps, cell.ln_c.eps)
    kernels = native.usable(x, h0, c0, *weights)
    if kernels is not None:
        h0, c0 = h0.contiguous(), c0.contiguous()
        weights = tuple(w.contiguous() for w in weights)
    if dense.needs_grad(x, h0, c0, cell.weight_ih, cell.ln_ih.weight, cell.bias, *weights):
        x_norm = (cell.ln_ih.weight, cell.bias)
        if kernels is not None:
            x_norm = tuple(w.contiguous() for w in x_norm)
        x_raw = dense.linear(x, cell.weight_ih)
        hs, c_T = _LayerNormLSTM.apply(
            x_raw, h0, c0, *weights, *x_norm, *eps, cell.ln_ih.eps, kernels
        )
    elif kernels is not None:
        T, B = x.shape[:2]
        hs, c_T = kernels.sequence_buffer([T, B, cell.hidden_size], h0.dtype), c0
        packed = dense.packed_for_steps(weights[0], B)
        # the input side's norm is folded into the kernel's row pass: one pass less over it
        x_norm = (cell.ln_ih.weight.contiguous(), cell.bias.contiguous(), cell.ln_ih.eps)
        x_panels = dense.panels(cell.weight_ih) if x.stride(-1) == 1 else None
        if x_panels is not None:  # one call: each step makes its W_ih x_t
            (c_T,) = kernels.lstm_forward(x, h0, c0, *weights, *eps, hs, False, packed, *x_norm,
                                          x_panels)  # fmt: skip
        else:
            for s, e in dense.chunks(T, B * G):  # the input side a few steps at a time
                h = h0 if s == 0 else hs[s - 1]
                (c_T,) = kernels.lstm_forward(dense.linear(x[s:e], cell.weight_ih), h, c_T,
                                              *weights, *eps, hs[s:e], False, packed, *x_norm,
                                              None)  # fmt: skip
    else:
        T, B = x.shape[:2]
        xg = _InputByChunks(lambda s, e: input_side(x[s:e]), T, B, G)
        hs, c_T, _ = _lstm_forward(xg, h0, c0, *weights, *eps, save=False)
    return hs, (hs[-1], c_T)


def _gru_forward(xp, h0, w_hh, g_hh, b_hh, eps, save):
    """The forward loop; with ``save``, also every buffer the backward needs.

    ``g_hh`` None is torch.nn.GRU's plain GRU: ``u = W_hh h + b_hh`` (one ``addmm``, as ATen
    computes it) where the layer-normalised GRU has ``u = LN(W_hh h) g_hh + b_hh``; the backward
    then needs neither ``hp`` (one step's scratch) nor the statistics (empty).
    """
    T, B, G = xp.shape
    H = G // 3
    norm = g_hh is not None
    w_t = w_hh.t()
    hs = h0.new_empty(T, B, H)  # every h_t, the output
    if save:
        hp = xp.new_empty(T if norm else 1, B, G)  # h_{t-1} @ W_hh^T, the norm's input
        rz = xp.new_empty(T, B, 2 * H)  # the reset and update gates
        ns = xp.new_empty(T, B, H)  # the candidates
    stats: list[list[Tensor]] = [[], [], []]  # mean, rstd and the candidate's u_n, per step
    h = h0
    for t in range(T):
        if norm:
            p = torch.mm(h, w_t, out=hp[t]) if save else torch.mm(h, w_t)
            u, mean, rstd = _ln(p, (G,), g_hh, b_hh, eps)  # LN(W_hh h) + b_hh, (B, 3H)
        else:
            u = torch.addmm(b_hh, h, w_t)  # W_hh h + b_hh, (B, 3H)
        gates = rz[t] if save else torch.empty_like(u[:, : 2 * H])
        x_t = xp[t]
        torch.add(x_t[:, : 2 * H], u[:, : 2 * H], out=gates).sigmoid_()
        r, z = gates[:, :H], gates[:, H:]
        n = ns[t] if save else torch.empty_like(h)
        torch.addcmul(x_t[:, 2 * H :], r, u[:, 2 * H :], out=n).tanh_()
        h = torch.addcmul(n, z, h - n, out=hs[t])  # (1 - z) n + z h, as gru_update has it
        if save:
            stats[2].append(u[:, 2 * H :])
            if norm:
                stats[0].append(mean)
                stats[1].append(rstd)
    if not save:
        return hs, None
    mean_rstd = [torch.stack(s) for s in stats[:2]] if norm else [xp.new_empty(0, B, 1)] * 2
    return hs, (hp, rz, ns, *mean_rstd, torch.stack(stats[2]))


class _GRU(torch.autograd.Function):
    """One GRU layer and direction over the whole sequence: the layer-normalised GRU, or with
    ``g_hh`` None torch.nn.GRU's plain one (``u = W_hh h + b_hh``, no norm)."""

    @staticmethod
    def forward(ctx, xp, h0, w_hh, g_hh, b_hh, eps, kernels):
        ctx.kernels = kernels
        if kernels is not None:
            hs = kernels.sequence_buffer([xp.shape[0], *h0.shape], h0.dtype)
            packed = dense.packed_for_steps(w_hh, h0.shape[0])
            saved = kernels.gru_forward(xp, h0, w_hh, g_hh, b_hh, eps, hs, True, packed)
        else:
            hs, saved = _gru_forward(xp, h0, w_hh, g_hh, b_hh, eps, True)
        ctx.save_for_backward(h0, w_hh, g_hh, b_hh, hs, *saved)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):
        h0, w_hh, g_hh, b_hh, hs, hp, rz, ns, mean, rstd, u_n = ctx.saved_tensors
        T, B, H = hs.shape
        G = 3 * H
        norm = g_hh is not None
        if ctx.kernels is not None:
            packed_t = dense.packed_for_steps(w_hh.t(), h0.shape[0])
            grad_xp, dh, grad_hp, *norms = ctx.kernels.gru_backward(
                grad_hs.contiguous(), h0, w_hh, g_hh, hs, hp, rz, ns, mean, rstd, u_n, packed_t
            )
            if not norm:  # grad_hp is dL/dp's candidate block; its r and z blocks are grad_xp's
                return grad_xp, dh, *_plain_gru_grads(grad_xp, grad_hp, hs, h0), None, None
            return grad_xp, dh, _w_hh_grad(grad_hp, hs, h0), *norms, None, None
        r, z = rz[..., :H], rz[..., H:]
        # Per-step factors independent of the incoming gradient, for all steps at once:
        # d(pre n) = dh * dn, d(pre r) = d(pre n) * dr, d(pre z) = dh * dz; the recurrent
        # norm's output gets the gates' gradients with the candidate's block times r.
        dn = torch.mul(ns, ns).neg_().add_(1).mul_(1 - z)  # (1 - z)(1 - n^2)
        dr = torch.addcmul(r, r, r, value=-1).mul_(u_n)  # r (1 - r) u_n
        dz = torch.addcmul(z, z, z, value=-1)  # z (1 - z) (h_{t-1} - n)
        dz[1:].mul_(hs[:-1] - ns[1:])
        dz[0].mul_(h0 - ns[0])
        scale_u = hs.new_ones(T, B, G)
        scale_u[..., 2 * H :] = r
        grad_xp = hs.new_empty(T, B, G)
        grad_u = hs.new_empty(T, B, G)  # dL/du, u = LN(W_hh h) g + b_hh or W_hh h + b_hh
        grad_hp: list[Tensor] = [hs] * T  # placeholders, all overwritten
        dh = torch.zeros_like(h0)
        mask = (True, False, False)  # the input's gradient only; the weights' come at the end
        for t in range(T - 1, -1, -1):
            dh.add_(grad_hs[t])
            gx = grad_xp[t]
            torch.mul(dh, dn[t], out=gx[:, 2 * H :])
            torch.mul(gx[:, 2 * H :], dr[t], out=gx[:, :H])
            torch.mul(dh, dz[t], out=gx[:, H : 2 * H])
            gu = torch.mul(gx, scale_u[t], out=grad_u[t])
            if norm:
                dp = _ln_backward(gu, hp[t], (G,), mean[t], rstd[t], g_hh, b_hh, mask)[0]
            else:
                dp = gu
            grad_hp[t] = dp
            dh = torch.addmm(dh.mul_(z[t]), dp, w_hh)  # through z h_{t-1} and W_hh h_{t-1}
        if not norm:  # dL/dp is dL/du
            return grad_xp, dh, _w_hh_grad(grad_u, hs, h0), None, grad_u.sum((0, 1)), None, None
        # scale_u is spent: reuse its pages (fresh memory costs a fault per page)
        grad_hp = torch.stack(grad_hp, out=scale_u)  # (T, B, 3H)
        weights = _gru_weight_grads(grad_hp, grad_u, hs, h0, hp, mean, rstd)
        return grad_xp, dh, *weights, None, None


def _plain_gru_grads(grad_xp, grad_hp_n, hs, h0):
    """dW_hh, None (no gain) and db_hh of the plain GRU, from dL/dp = (grad_xp's r and z
    blocks, grad_hp_n): whole-sequence products over strided views, no copy."""
    H = hs.shape[-1]
    rz = grad_xp[..., : 2 * H]
    grad_w_hh = torch.cat([_w_hh_grad(rz, hs, h0), _w_hh_grad(grad_hp_n, hs, h0)])
    grad_b_hh = torch.cat([rz.sum((0, 1)), grad_hp_n.sum((0, 1))])
    return grad_w_hh, None, grad_b_hh


def _gru_weight_grads(grad_hp, grad_u, hs, h0, hp, mean, rstd):
    """dW_hh, the recurrent norm's gain and shift: whole-sequence sums; ``grad_hp`` is reused."""
    grad_w_hh = _w_hh_grad(grad_hp, hs, h0)
    n_hp = torch.sub(hp, mean, out=grad_hp).mul_(rstd)  # the normalised W_hh h_{t-1}
    grad_g_hh = n_hp.mul_(grad_u).sum((0, 1))
    grad_b_hh = grad_u.sum((0, 1))
    return grad_w_hh, grad_g_hh, grad_b_hh


def layer_norm_gru_sequence(cell, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """``LayerNormGRUCell`` over a whole ``(T, B, I)`` sequence: ``(hs, h_T)``."""
    G = 3 * cell.hidden_size

    def input_side(x: Tensor) -> Tensor:  # LN(W_ih x) gamma + b_ih, the bias as the shift
        return F.layer_norm(dense.linear(x, cell.weight_ih), (G,), cell.ln_ih.weight, cell.bias_ih,
                            cell.ln_ih.eps)  # fmt: skip

    inputs = (cell.weight_ih, cell.ln_ih.weight, cell.bias_ih)
    recurrent = (cell.weight_hh, cell.ln_hh.weight, cell.bias_hh, cell.ln_hh.eps)
    hs = gru_sequence(input_side, x, h0, *recurrent, inputs)
    return hs, hs[-1]


def gru_sequence(
    input_side: Callable[[Tensor], Tensor],
    x: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    g_hh: Tensor | None,
    b_hh: Tensor,
    eps: float,
    input_weights: tuple[Tensor | None, ...],
) -> Tensor:
    """A GRU over a whole ``(T, B, I)`` sequence: every ``h_t``, ``(T, B, H)``.

    ``input_side(x)`` gives the ``(t, B, 3H)`` input side of a run of steps (``input_weights``
    are its parameters, to know whether a graph is needed). ``g_hh`` None is torch.nn.GRU's
    plain GRU, ``r = sigma(x_r + W_hr h + b_hr)``, ``z`` likewise,
    ``n = tanh(x_n + r (W_hn h + b_hn))``; with ``g_hh`` the recurrent side is
    ``LN(W_hh h) g_hh + b_hh`` instead.
    """
    G = 3 * h0.shape[-1]
    weights = (w_hh, g_hh, b_hh)
    kernels = native.usable(x, h0, *(w for w in weights if w is not None))
    if kernels is not None:
        h0 = h0.contiguous()
        weights = tuple(w if w is None else w.contiguous() for w in weights)
    if dense.needs_grad(x, h0, *input_weights, *weights):
        return _GRU.apply(input_side(x).contiguous(), h0, *weights, eps, kernels)
    T, B = x.shape[:2]
    if kernels is not None:
        hs = kernels.sequence_buffer([T, B, h0.shape[-1]], h0.dtype)
        packed = dense.packed_for_steps(weights[0], B)
        for s, e in dense.chunks(T, B * G):  # the input side a few steps at a time
            h = h0 if s == 0 else hs[s - 1]
            kernels.gru_forward(input_side(x[s:e]).contiguous(), h, *weights, eps, hs[s:e], False,
                                packed)  # fmt: skip
        return hs
    xp = _InputByChunks(lambda s, e: input_side(x[s:e]), T, B, G)
    hs, _ = _gru_forward(xp, h0, *weights, eps, save=False)
    return hs
