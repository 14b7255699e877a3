"""Padding variable-length sequences into one batch: the one padding collate of every task."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


def pad_batch(
    sequences: Sequence[Tensor | list[int]], pad_value: float = 0
) -> tuple[Tensor, Tensor]:
    """Right-pad sequences ``(T_b, ...)`` into a batch ``(B, T, ...)``, ``T`` the longest, and
    return it with the ``(B,)`` int64 lengths.

    A sequence is a tensor (ids ``(T,)`` or features ``(T, F)``, dtype kept) or a list of ids
    (int64). Token ids pad with ``<pad>`` = 0, per-step labels with -100 (what the loss ignores).
    A batch of empty sequences is one step wide, so that a model still has a step to read.

    Example::

        >>> pad_batch([[5, 6, 7], [8]])
        (tensor([[5, 6, 7],
                [8, 0, 0]]), tensor([3, 1]))
    """
    if not sequences:
        raise ValueError("pad_batch: no sequences")
    tensors = [
        s if isinstance(s, Tensor) else torch.as_tensor(s, dtype=torch.long) for s in sequences
    ]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    out = pad_sequence(tensors, batch_first=True, padding_value=pad_value)
    if out.size(1) == 0:
        out = out.new_full((len(tensors), 1, *out.shape[2:]), pad_value)
    return out, lengths
