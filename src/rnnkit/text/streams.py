"""Token streams for truncated back-propagation through time, char-rnn style.

The corpus is split by position into train, validation and test (in that order, so the held-out
parts are text the model never saw). A split is cut into ``B`` contiguous streams, one per batch
row; window ``k`` reads steps ``[k * bptt, (k + 1) * bptt)`` of every stream, so the hidden state
left by window ``k`` is the right starting state for window ``k + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rnnkit.datasets.splits import split_positions


def split_by_position(ids: Tensor, val_fraction: float, test_fraction: float) -> dict[str, Tensor]:
    """Cut a 1-D token tensor into ``train``, ``val`` and ``test`` by position
    (``rnnkit.datasets.splits.split_positions``: held-out sizes rounded down)."""
    parts = split_positions(ids.numel(), val_fraction, test_fraction)
    return {name: ids[r.start : r.stop] for name, r in parts.items()}


@dataclass
class Window:
    """One batch: inputs and next-token targets ``(B, T)``, and whether a new pass begins."""

    x: Tensor
    y: Tensor
    starts_pass: bool


class StreamBatcher:
    """Cut a token tensor into ``batch_size`` streams and serve ``bptt``-long windows.

    ``rank`` and ``world_size`` select this process's share of the streams for data-parallel
    training: rank ``r`` reads rows ``r, r + W, r + 2W, ...`` of the full batch.

    Args:
        ids: the split's tokens, 1-D.
        batch_size: streams (rows) in the full batch, B.
        bptt: time steps per window, T.
        name: what to call the split in errors.
    """

    def __init__(
        self,
        ids: Tensor,
        batch_size: int,
        bptt: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        name: str = "train",
    ) -> None:
        per_stream = (ids.numel() - 1) // batch_size
        if per_stream < bptt:
            raise ValueError(
                f"the {name} split has {ids.numel():,} tokens, too few for one batch of "
                f"{batch_size} streams x {bptt} steps (needs {batch_size * bptt + 1:,}); "
                "use more data, a smaller --batch-size or a smaller --bptt"
            )
        if batch_size % world_size:
            raise ValueError(f"--batch-size {batch_size} must divide among {world_size} processes")
        used = per_stream * batch_size
        self.x = ids[:used].view(batch_size, per_stream)[rank::world_size]  # (B/W, N)
        self.y = ids[1 : used + 1].view(batch_size, per_stream)[rank::world_size]
        self.bptt = bptt
        self.windows_per_pass = per_stream // bptt

    def __len__(self) -> int:
        return self.windows_per_pass

    def window(self, step: int) -> Window:
        """The window for training step ``step`` (passes repeat after ``len(self)`` steps)."""
        k = step % self.windows_per_pass
        sl = slice(k * self.bptt, (k + 1) * self.bptt)
        return Window(self.x[:, sl], self.y[:, sl], k == 0)

    def tokens_per_window(self) -> int:
        return self.x.size(0) * self.bptt


def eval_windows(ids: Tensor, batch_size: int, bptt: int) -> list[Window]:
    """Every window of a held-out split, with as many streams as fit (at most ``batch_size``).

    Small splits get fewer streams rather than an error, so that evaluation always covers
    the split; the last partial window is kept, so every token but the stream ends is scored.
    """
    batch = max(1, min(batch_size, (ids.numel() - 1) // max(bptt, 1)))
    per_stream = (ids.numel() - 1) // batch
    if per_stream < 1:
        raise ValueError(f"a held-out split of {ids.numel()} tokens is too small to score")
    used = per_stream * batch
    x = ids[:used].view(batch, per_stream)
    y = ids[1 : used + 1].view(batch, per_stream)
    return [
        Window(x[:, s : s + bptt], y[:, s : s + bptt], s == 0) for s in range(0, per_stream, bptt)
    ]
