"""Training batches of similar lengths, drawn afresh from a seed each pass over the data."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch

Shuffle = Callable[[list], None]
"""Shuffles a list in place."""


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, shuffle: Shuffle, pool: int = 50
) -> list[list[int]]:
    """Index batches of similar lengths, in a random order.

    The items are shuffled, cut into pools of ``pool`` batches, each pool sorted by length and
    cut into batches, and the batch order shuffled: little padding, yet a fresh mix every epoch.
    """
    order = list(range(len(lengths)))
    shuffle(order)
    batches = []
    size = batch_size * pool
    for start in range(0, len(order), size):
        chunk = sorted(order[start : start + size], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffle(batches)
    return batches


def python_shuffle(seed: int) -> Shuffle:
    """An in-place shuffle drawn from Python's ``random`` with ``seed``."""
    return random.Random(seed).shuffle


def torch_shuffle(seed: int) -> Shuffle:
    """An in-place shuffle drawn from ``torch.randperm`` with ``seed``."""
    g = torch.Generator().manual_seed(seed)

    def shuffle(items: list) -> None:
        items[:] = [items[i] for i in torch.randperm(len(items), generator=g).tolist()]

    return shuffle


class BatchPlan:
    """Training step -> the indices of its batch: one length-bucketed plan per pass over the
    data, made when the pass begins from ``shuffle_for(epoch)``, so a resumed run gets the same
    batches.

    After ``shard(rank, world_size)`` (data-parallel training) it gives this rank's slice of
    each batch, items ``rank, rank + W, ...``: the ranks together train on the batch one process
    would. A batch with fewer items than ranks (the last of a pass) leaves some ranks nothing;
    they get the batch's first item as a stand-in (``is_stand_in``), which the trainer weighs
    zero.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, shuffle_for: Callable[[int], Shuffle]
    ) -> None:
        self.lengths, self.batch_size, self.shuffle_for = list(lengths), batch_size, shuffle_for
        self.per_epoch = -(-len(self.lengths) // batch_size)
        self._epoch, self._batches = -1, []
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Give only rank ``rank``'s slice of every batch (of ``world_size`` ranks)."""
        self.rank, self.world_size = rank, world_size

    def is_stand_in(self, step: int) -> bool:
        """Whether this rank's slice of step ``step``'s batch is empty (a stand-in is given)."""
        return len(self._full(step)) <= self.rank

    def __call__(self, step: int) -> list[int]:
        batch = self._full(step)
        if self.world_size == 1:
            return batch
        return batch[self.rank :: self.world_size] or batch[:1]

    def _full(self, step: int) -> list[int]:
        epoch = step // self.per_epoch
        if epoch != self._epoch:
            shuffle = self.shuffle_for(epoch)
            self._epoch = epoch
            self._batches = length_bucketed_batches(self.lengths, self.batch_size, shuffle)
        return self._batches[step % self.per_epoch]
