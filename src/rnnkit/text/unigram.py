"""The unigram baseline: the context-free model that predicts every token with its frequency.

A sequence model has learned something only when it beats this. ``unigram_entropy`` is its
loss on the text it was counted on; ``unigram_cross_entropy`` its loss on held-out tokens, with
the training counts add-one smoothed so that a token never seen in training costs a finite
amount:

    p(t) = (count_train(t) + 1) / (N_train + V),    loss = -mean over scored t of log p(t)

``V`` is the vocabulary's size, or, where no vocabulary is given, the number of distinct tokens
in the training and the scored ids together (the generation task's convention).
"""

from __future__ import annotations

import torch
from torch import Tensor


def unigram_entropy(ids: Tensor, vocab_size: int) -> float:
    """Entropy in nats of the token frequencies: the loss of a model that ignores context."""
    counts = torch.bincount(ids, minlength=vocab_size).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def unigram_cross_entropy(
    train_ids: Tensor, scored_ids: Tensor, vocab_size: int | None = None
) -> float:
    """Loss in nats per token on ``scored_ids`` of the add-one smoothed unigram model counted on
    ``train_ids`` (1-D int64 tensors): the trivial baseline on held-out tokens (module
    docstring). 0 when nothing is scored."""
    if scored_ids.numel() == 0:
        return 0.0
    if vocab_size is None:  # V: the distinct tokens of both, renumbered 0..V-1
        seen = torch.unique(torch.cat([train_ids, scored_ids]))
        train_ids, scored_ids = (
            torch.searchsorted(seen, train_ids),
            torch.searchsorted(seen, scored_ids),
        )
        vocab_size = seen.numel()
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1.0
    log_p = (counts / counts.sum()).log()
    return float(-log_p[scored_ids].mean())
