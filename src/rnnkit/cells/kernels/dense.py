"""``linear``: ``F.linear`` for the whole-sequence input side of a layer, on oneDNN.

``F.linear`` on a float32 CPU tensor is one MKL ``sgemm``. The same product through oneDNN (the
library behind torch's own fused CPU LSTM, shipped inside torch) took 0.79-0.88 of its time for
a ``(4096, 256) x (256, 1024)`` product on 2 threads of this project's AMD machine, and about the
same (0.98-0.99) for ``(16384, 128) x (128, 512)`` (``benchmarks/dense_products.py``). The input
side of a recurrent layer (``W_ih x`` over all ``T * B`` rows at once) is the largest single
product of a layer, so the fused engines, hoisted user cells, the minimal cells and the
reference loop call this instead of ``F.linear``.

``packed_for_steps`` serves the C++ time loops' per-step products ``h W^T``: a copy of ``W`` laid
out once per call for rnnkit's own per-step kernel (AVX-512) or for oneDNN, instead of ATen's
``mm``, which packs ``W`` again at every step.

oneDNN's operator has no autograd formula; ``_OneDnnLinear`` gives it one (first order).
Off the CPU, in other dtypes (float64 gradcheck included), under tracing, scripting or
compiling, this is ``F.linear`` itself. The two differ by float rounding only (a different
summation order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells import kernels


def needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd will record an operation on these tensors."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _onednn_ok(*tensors: Tensor | None) -> bool:
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    if not torch.backends.mkldnn.is_available():
        return False
    return all(t is None or (type(t) in (Tensor, torch.nn.Parameter) and t.device.type == "cpu"
                             and t.dtype == torch.float32) for t in tensors)  # fmt: skip


def _onednn(rows: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")


class _OneDnnLinear(torch.autograd.Function):
    """``rows @ weight.T + bias`` on oneDNN, with its gradients: ``d rows`` on oneDNN too (with
    ``weight.T`` made contiguous), ``d weight`` and ``d bias`` as ATen's products and sums.
    First-order only (no double backward)."""

    @staticmethod
    def forward(ctx, rows: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(rows, weight)
        ctx.has_bias = bias is not None
        return _onednn(rows, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        rows, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_rows = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_rows = _onednn(grad, weight.t().contiguous(), None)
        if ctx.needs_input_grad[1]:
            grad_weight = grad.t() @ rows
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_rows, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)``, on oneDNN for float32 CPU tensors (forward and the input's
    gradient; see the module doc). ``x`` is ``(..., I)``, ``weight`` ``(F, I)``, the result
    ``(..., F)``."""
    if x.dim() < 2 or x.numel() == 0 or not _onednn_ok(x, weight, bias):
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1])
    out = (_OneDnnLinear.apply(rows, weight, bias) if needs_grad(x, weight, bias)
           else _onednn(rows, weight, bias))  # fmt: skip
    return out.reshape(*x.shape[:-1], weight.shape[0])


def packed_for_steps(weight: Tensor, batch_size: int) -> Tensor | None:
    """``weight`` laid out once per call for the C++ time loops' per-step product
    ``h @ weight.T`` (``step_product`` in ``common.h``; ``weight`` may be a transposed view),
    or None where no layout serves (not float32; no AVX-512 and no oneDNN): the loops then use
    ATen's ``mm``.

    With AVX-512, the layout of rnnkit's own per-step kernel (``pack_panels``: an ``(N, K, 1)``
    view over the panels); otherwise oneDNN's, chosen for one block's rows (the loops split the
    batch among the threads, ``row_blocks`` there: blocks of at least 8 rows).
    """
    if weight.dtype != torch.float32:
        return None
    laid_out = panels(weight)
    if laid_out is not None:
        return laid_out
    with torch.no_grad():
        if not torch.backends.mkldnn.is_available():
            return None
        blocks = max(1, min(torch.get_num_threads(), batch_size // 8))
        return torch.ops.mkldnn._reorder_linear_weight(
            weight.detach().contiguous(), batch_size // blocks
        )


def panels(weight: Tensor) -> Tensor | None:
    """``weight`` in the panel layout of rnnkit's per-step kernel (``pack_panels``), for a loop
    that makes ``W x_t`` at every step itself; None where that kernel does not run (not float32,
    no AVX-512, no kernels)."""
    if weight.dtype != torch.float32 or weight.device.type != "cpu":
        return None
    ops = kernels.load()
    if ops is None:
        return None
    with torch.no_grad():
        packed = ops.pack_panels(weight.detach())
    return packed if packed.dim() == 3 else None  # 1-D and empty: no AVX-512


def chunk_steps(row: int) -> int:
    """Steps per chunk of a forward-only input side whose step is ``row`` values (see
    :func:`chunks`)."""
    return max(1, (1 << 20) // max(row, 1))


def chunks(steps: int, row: int) -> list[tuple[int, int]]:
    """``(start, end)`` step ranges, about 4 MB of float32 each, for a forward-only time loop
    that computes its input side (``W_ih x``) a few steps at a time instead of all at once.

    The whole sequence's input side is tens of megabytes at the sizes people train (T 256, B 64,
    4H 512: 32 MB), which the allocator hands over as fresh pages at every call, one fault per
    4 kB; chunks of about 4 MB are recycled from the heap, and each is read by the loop soon
    after it is made. A (16384, 128) x (128, 512) product took 13.5 ms in chunks against 22.3 ms
    whole; a (4096, 256) x (256, 1024) one, 16 MB, which the heap can recycle whole, 12.2 against
    11.4 (2 threads of this project's machine, ``benchmarks/dense_products.py``, the
    ``onednn-chunks`` rows). The loop's memory no longer grows with T by the input side either.
    """
    n = chunk_steps(row)
    return [(s, min(s + n, steps)) for s in range(0, steps, n)]
