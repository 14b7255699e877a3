"""A layer's per-step states, as every diagnosis reads them: reference path, eval mode.

The fused kernels (``backend="native"``) expose no per-step states, and dropout between
layers would make two runs disagree, so ``reference_states`` switches a native layer to
``"auto"`` (which takes the reference path for ``return_states``) and to eval mode for the one
call, then restores both.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor, nn

from rnnkit.state import StepStates


def reference_states(
    layer: nn.Module, x: Tensor, *, grad: bool = False
) -> tuple[Tensor, StepStates]:
    """Outputs ``(B, T, F)`` and ``StepStates`` of ``layer`` for batch-first input ``x``.

    ``layer`` is an rnnkit layer or ``Recurrent``, batch-first or not. With ``grad`` the call
    records the graph (the states are the very tensors it uses, for ``autograd.grad``);
    without, it runs under ``torch.no_grad``.
    """
    backend = getattr(layer, "backend", None)
    training = layer.training
    batch_first = getattr(layer, "batch_first", False)
    if backend == "native":
        layer.backend = "auto"
    layer.eval()
    try:
        with nullcontext() if grad else torch.no_grad():
            out, _, states = layer(x if batch_first else x.transpose(0, 1), return_states=True)
    finally:
        if backend is not None:
            layer.backend = backend
        layer.train(training)
    return (out if batch_first else out.transpose(0, 1)), states
