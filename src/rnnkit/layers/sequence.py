"""Every input form a recurrent layer accepts, brought to one: time-major, padded, with a mask.

``torch.nn`` layers accept ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, unbatched
``(T, I)``, and a ``PackedSequence``; rnnkit adds ``lengths=`` beside a padded batch. The
reference path turns all of them into a ``(T, B, I)`` tensor and a ``(T, B)`` validity mask,
runs the unroller once, and puts the output back into the form it came in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.state import lengths_mask


def capturing_graph() -> bool:
    """Whether ``torch.compile`` or ``torch.export`` (the dynamo ONNX exporter) is tracing.

    Their graphs cannot hold a value-dependent shape, so a layer given ``lengths=`` there runs
    the masked reference loop instead of packing for the fused kernel (packing sizes its output
    by the lengths' values).
    """
    compiler = torch.compiler  # is_compiling came in torch 2.3, is_exporting in 2.5
    if hasattr(compiler, "is_compiling") and compiler.is_compiling():
        return True
    return hasattr(compiler, "is_exporting") and compiler.is_exporting()


def check_lengths(lengths: object, batch_size: int, steps: int) -> Tensor:
    """Validate ``lengths=`` and return it as an int64 tensor ``(B,)``, on its own device.

    Lengths may come in any order and on any device; each must lie in ``[1, T]``. The range is
    checked in eager mode only: under ``torch.jit.trace``, ``torch.compile`` or an exporter it
    would read the values (a graph break, or a constant baked into the trace).
    """
    if isinstance(lengths, (list, tuple)):
        lengths = torch.as_tensor(lengths)
    if not isinstance(lengths, Tensor):
        raise TypeError(f"lengths must be a 1-D tensor of ints, got {type(lengths).__name__}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.numel() != batch_size:
        raise ValueError(
            f"lengths must have shape ({batch_size},), one length per sequence in the batch, "
            f"got shape {tuple(lengths.shape)}"
        )
    lengths = lengths.to(torch.int64)
    if torch.jit.is_tracing() or capturing_graph():
        return lengths
    if batch_size and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
        raise ValueError(
            f"every length must lie in [1, {steps}] (the number of time steps), "
            f"got min {int(lengths.min())} and max {int(lengths.max())}"
        )
    return lengths


@dataclass
class SequenceBatch:
    """A batch brought to time-major form, and what is needed to give the output back."""

    x: Tensor
    """The input, ``(T, B, I)``."""
    mask: Tensor | None
    """``(T, B)``: True where a step lies inside its sequence; None when all do."""
    batch_first: bool
    batched: bool
    packed: PackedSequence | None = None
    """The packed input, when the input was one; the output is packed the same way."""
    lengths: Tensor | None = None
    """``(B,)`` lengths in batch order, when the input had them (packed or ``lengths=``)."""

    def restore(self, output: Tensor) -> Tensor | PackedSequence:
        """Put a ``(T, B, F)`` output back into the form the input came in."""
        if self.packed is not None:
            assert self.lengths is not None
            order = self.packed.sorted_indices
            if order is not None:
                output = output.index_select(1, order)
                lengths = self.lengths.index_select(0, order.to(self.lengths.device))
            else:
                lengths = self.lengths
            data = pack_padded_sequence(output, lengths.cpu(), enforce_sorted=True).data
            return PackedSequence(
                data,
                self.packed.batch_sizes,
                self.packed.sorted_indices,
                self.packed.unsorted_indices,
            )
        if self.batch_first:
            output = output.transpose(0, 1)
        if not self.batched:
            output = output.squeeze(1 if not self.batch_first else 0)
        return output


def to_time_major(
    input: Tensor | PackedSequence, *, batch_first: bool, lengths: Tensor | None = None
) -> SequenceBatch:
    """Bring a checked input (3-D when batched, or packed) to a ``SequenceBatch``.

    ``input`` must already be batched (unbatched input is unsqueezed by the caller, which also
    records that in ``batched``) unless it is a ``PackedSequence``.
    """
    if isinstance(input, PackedSequence):
        x, packed_lengths = pad_packed_sequence(input)  # (T, B, I), lengths in batch order
        mask = lengths_mask(packed_lengths, x.size(0), x.device).t()  # (T, B)
        return SequenceBatch(x, mask, False, True, packed=input, lengths=packed_lengths)
    x = input.transpose(0, 1) if batch_first else input
    mask = None if lengths is None else lengths_mask(lengths, x.size(0), x.device).t()
    return SequenceBatch(x, mask, batch_first, True, lengths=lengths)
