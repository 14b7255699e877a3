"""Train, validation and test splits: one rounding rule, one cut, for every task.

The rule: every part but one gets ``round(n * fraction)`` items (Python's ``round``, which
sends a half to the even neighbour), and at least ``at_least``; the remaining part, ``rest``
(``train`` unless said otherwise), takes whatever is left. The items are first put in a fixed
order (as given, or shuffled with a seed) and the parts are then cut off that order one after
another, in ``order``.

The tasks that split before this module existed keep the sizes and members of the runs they
made (and of the figures published from them) by parameter:

- the language model (``split_positions``): held-out sizes rounded *down*
  (``rounding="down"``), text in place, train first: the held-out text follows the training text;
- classification: ``rest="test"`` (train and val are rounded), numpy's shuffle, cut train, val,
  test, indices sorted within each part;
- sequence-to-sequence and generation (``split_held_out_first``): ``at_least=1``, Python's
  shuffle, cut test, val, train.

A time series is split elsewhere (``rnnkit.series.windows.split_bounds``): its held-out parts
are counts of points given by the user, not fractions, and must follow one another in time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

Rounding = Literal["nearest", "down"]
Shuffle = Literal["python", "numpy"]
PARTS = ("train", "val", "test")


class SplitError(ValueError):
    """Too few items for the asked parts; the message says how many there are."""


def split_sizes(
    n: int,
    fractions: Mapping[str, float],
    *,
    rest: str = "train",
    rounding: Rounding = "nearest",
    at_least: int = 0,
) -> dict[str, int]:
    """How many of ``n`` items each part gets (see the module docstring for the rule).

    Args:
        n: the number of items.
        fractions: each part's share; ``rest``'s own share, if given, is not read.
        rest: the part that takes what the others leave.
        rounding: ``"nearest"`` (the rule) or ``"down"`` (the language model's sizes).
        at_least: the fewest items a part other than ``rest`` gets.

    The sizes of the other parts may add up to more than ``n`` only for tiny ``n``; ``rest`` then
    gets a negative size, which ``split_ranges`` turns into an empty part.
    """
    if rounding not in ("nearest", "down"):
        raise ValueError(f"rounding must be 'nearest' or 'down', got {rounding!r}")
    round_ = math.floor if rounding == "down" else round
    sizes = {
        name: max(at_least, int(round_(n * fraction)))
        for name, fraction in fractions.items()
        if name != rest
    }
    sizes[rest] = n - sum(sizes.values())
    return sizes


def split_ranges(
    n: int,
    fractions: Mapping[str, float],
    *,
    order: Sequence[str] = PARTS,
    rest: str = "train",
    rounding: Rounding = "nearest",
    at_least: int = 0,
    min_rest: int | None = None,
    what: str = "items",
) -> dict[str, range]:
    """The positions ``[start, stop)`` of each part in a sequence of ``n`` items, the parts cut
    off one after another in ``order``.

    ``min_rest``: the fewest items ``rest`` may keep (None: no check, a short part is the
    caller's to report); fewer is a ``SplitError`` that counts the ``what`` (``"rows"``,
    ``"distinct sources"``). The other arguments: ``split_sizes``.
    """
    sizes = split_sizes(n, fractions, rest=rest, rounding=rounding, at_least=at_least)
    if min_rest is not None and sizes[rest] < min_rest:
        names = [name for name in PARTS if name in order] + [o for o in order if o not in PARTS]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        raise SplitError(f"only {n} {what}: too few to split into {listed}")
    out, start = {}, 0
    for name in order:
        stop = min(n, start + max(sizes[name], 0))  # an over-full cut leaves the last part short
        out[name] = range(start, stop)
        start = stop
    return out


def shuffled(n: int, seed: int, rng: Shuffle = "python") -> list[int]:
    """``range(n)`` in a fixed random order: ``random.Random(seed).shuffle`` or
    ``numpy.random.RandomState(seed).permutation`` (both stable across versions)."""
    if rng == "numpy":
        return np.random.RandomState(seed).permutation(n).tolist()
    if rng != "python":
        raise ValueError(f"rng must be 'python' or 'numpy', got {rng!r}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def split_indices(
    n: int,
    fractions: Mapping[str, float],
    *,
    seed: int,
    rng: Shuffle = "python",
    sort: bool = False,
    **cut,
) -> dict[str, list[int]]:
    """A seeded random split of ``range(n)``: the indices of each part.

    Args:
        n: the number of items.
        fractions: each part's share (see ``split_sizes``).
        seed: the shuffle's seed; the same seed gives the same split.
        rng: which shuffle (``shuffled``).
        sort: sort the indices within each part (else they keep the shuffled order).
        **cut: ``order``, ``rest``, ``rounding``, ``at_least``, ``min_rest``, ``what``, as
            ``split_ranges`` takes them.

    Example::

        >>> parts = split_indices(10, {"val": 0.2, "test": 0.1}, seed=0)
        >>> {name: len(idx) for name, idx in parts.items()}
        {'train': 7, 'val': 2, 'test': 1}
    """
    order = shuffled(n, seed, rng)
    parts = {name: order[r.start : r.stop] for name, r in split_ranges(n, fractions, **cut).items()}
    return {name: sorted(idx) for name, idx in parts.items()} if sort else parts


def split_held_out_first(
    n: int, val_fraction: float, test_fraction: float, *, seed: int, what: str = "items"
) -> dict[str, list[int]]:
    """The sequence-to-sequence and generation split of ``n`` items: shuffled with ``seed``
    (Python's shuffle), test and val cut off first with at least one item each, train the
    rest (at least one, else a ``SplitError`` counting the ``what``)."""
    return split_indices(
        n,
        {"val": val_fraction, "test": test_fraction},
        seed=seed,
        order=("test", "val", "train"),
        at_least=1,
        min_rest=1,
        what=what,
    )


def split_positions(n: int, val_fraction: float, test_fraction: float) -> dict[str, range]:
    """The language model's split of ``n`` tokens by position: train, then val, then test, the
    held-out sizes rounded down (as every language-model run so far has had them)."""
    return split_ranges(n, {"val": val_fraction, "test": test_fraction}, rounding="down")
