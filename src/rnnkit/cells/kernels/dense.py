"""``linear``: ``F.linear`` for the whole-sequence input side of forward-only runs, on oneDNN.

``F.linear`` on a float32 CPU tensor is one MKL ``sgemm``. The same product through oneDNN (the
library behind torch's own fused CPU LSTM, shipped inside torch) ran about 20 % faster for a
``(4096, 256) x (256, 1024)`` product on one thread of this project's AMD machine. The input
side of a recurrent layer (``W_ih x`` over all ``T * B`` rows at once) is the largest single
product of a forward pass, so the forward-only paths of the fused engines, of hoisted user
cells, of the minimal cells and of the reference loop call this instead of ``F.linear``; whole
forward passes gained 0-6 % (2 threads, measured once).

``packed_for_steps`` serves the C++ time loops' per-step products ``h W^T``: oneDNN on a copy of
``W`` laid out once per call, instead of ATen's ``mm``, which packs ``W`` again at every step.

oneDNN's operator has no autograd formula, so it is used only where no gradient is needed;
otherwise, and off the CPU, in other dtypes, under tracing, scripting or compiling, this is
``F.linear`` itself. The two differ by float rounding only (a different summation order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _onednn_ok(*tensors: Tensor | None) -> bool:
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    if not torch.backends.mkldnn.is_available():
        return False
    return all(t is None or (type(t) in (Tensor, torch.nn.Parameter) and t.device.type == "cpu"
                             and t.dtype == torch.float32) for t in tensors)  # fmt: skip


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)``; on oneDNN for float32 CPU tensors when no gradient is
    needed. ``x`` is ``(..., I)``, ``weight`` ``(F, I)``, the result ``(..., F)``."""
    if x.dim() < 2 or x.numel() == 0 or not _onednn_ok(x, weight, bias):
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1])
    out = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")
    return out.reshape(*x.shape[:-1], weight.shape[0])


def packed_for_steps(weight: Tensor, batch_size: int) -> Tensor | None:
    """``weight`` laid out once for oneDNN's per-step product ``h @ weight.T`` in the C++ time
    loops (``step_product`` in ``layer_norm_rnn.cpp``), or None where that cannot run (not
    float32, no oneDNN): the loops then use ATen's ``mm``.

    The loops split the batch among the threads (``row_blocks`` there: blocks of at least 8
    rows), so the layout is chosen for one block's rows.
    """
    if weight.dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return None
    blocks = max(1, min(torch.get_num_threads(), batch_size // 8))
    with torch.no_grad():
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), batch_size // blocks)
