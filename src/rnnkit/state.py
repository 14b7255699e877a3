"""The hidden state as a value: a tensor, or a tuple of tensors (LSTM's ``(h, c)``).

A layer's state stacks one cell state per layer and direction along dim 0, as ``torch.nn`` does:
``h`` is ``(L*D, B, H)``; an LSTM's is ``(h, c)`` with each part stacked that way. These helpers
work on any such structure, so custom cells get the same handling as the standard ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

State = Union[Tensor, tuple[Tensor, ...]]  # noqa: UP007 (a runtime alias on Python 3.10)
"""A cell's state: one tensor or a tuple of tensors."""


def leaves(state: State) -> tuple[Tensor, ...]:
    """The tensors of a state, in order: ``(h,)`` for a tensor, ``(h, c)`` for an LSTM's."""
    return (state,) if isinstance(state, Tensor) else tuple(state)


def from_leaves(like: State, parts: Sequence[Tensor]) -> State:
    """A state with the structure of ``like`` (a tensor or a tuple) made of ``parts``."""
    return parts[0] if isinstance(like, Tensor) else tuple(parts)


def lengths_mask(lengths: Tensor, steps: int, device: torch.device | None = None) -> Tensor:
    """``(B, T)`` booleans, True on the first ``lengths[b]`` steps of each row ``b``.

    Batch-first, the orientation of the architectures; the time-major layers transpose.

    Example::

        >>> lengths_mask(torch.tensor([3, 1]), 4)
        tensor([[ True,  True,  True, False],
                [ True, False, False, False]])
    """
    device = lengths.device if device is None else device
    return torch.arange(steps, device=device)[None, :] < lengths.to(device)[:, None]


def map_state(fn: Callable[..., Tensor], state: State, *others: State) -> State:
    """Apply ``fn`` to each tensor of ``state`` (and the matching tensors of ``others``)."""
    if isinstance(state, Tensor):
        return fn(state, *others)
    return tuple(fn(*parts) for parts in zip(state, *others))


def detach_state(state: State) -> State:
    """Cut the graph behind a state, for truncated back-propagation through time.

    Example::

        out, state = lstm(chunk, state)
        state = rnnkit.detach_state(state)  # the next window starts a fresh graph
    """
    return map_state(Tensor.detach, state)


def stack_states(states: Sequence[State]) -> State:
    """Stack per-layer-and-direction cell states into a layer state, ``(L*D, B, ...)``."""
    first = states[0]
    if isinstance(first, Tensor):
        return torch.stack(list(states))  # type: ignore[arg-type]
    return tuple(torch.stack([s[i] for s in states]) for i in range(len(first)))


def unstack_state(state: State, n: int) -> list[State]:
    """Split a layer state ``(L*D, B, ...)`` into ``n`` cell states ``(B, ...)``."""
    if isinstance(state, Tensor):
        return list(state.unbind(0))[:n]
    parts = [s.unbind(0) for s in state]
    return [tuple(p[k] for p in parts) for k in range(n)]


@dataclass
class StepStates:
    """Every cell state at every step, for inspection and gradients through time.

    ``steps[k][t]`` is the state of layer ``k // D``, direction ``k % D`` after it has read
    input step ``t`` (time in input order for both directions). These are the very tensors the
    unrolled graph uses, so ``torch.autograd.grad(loss, steps[k][t])`` gives ``dL/dh_t``.
    """

    steps: list[list[State]]
    num_layers: int
    num_directions: int
    batched: bool = True
    """False for unbatched input: ``stacked`` then drops the batch dimension."""

    def stacked(self, part: int = 0) -> Tensor:
        """One part of the state (0 = h, 1 = c for LSTM) for all steps: ``(L*D, T, B, H)``."""
        out = []
        for per_step in self.steps:
            parts = [s if isinstance(s, Tensor) else s[part] for s in per_step]
            out.append(torch.stack(parts))
        stacked = torch.stack(out)  # (L*D, T, B, H)
        return stacked if self.batched else stacked.squeeze(2)

    @property
    def h(self) -> Tensor:
        """Hidden states ``h_t`` of every layer and direction: ``(L*D, T, B, H)``."""
        return self.stacked(0)

    @property
    def c(self) -> Tensor:
        """LSTM cell states ``c_t`` of every layer and direction: ``(L*D, T, B, H)``."""
        if isinstance(self.steps[0][0], Tensor):
            raise AttributeError("this cell's state is a single tensor; it has no c_t")
        return self.stacked(1)

    def at(self, layer: int, direction: int = 0, part: int | None = None) -> list[State]:
        """The per-step states of one layer and direction, a list over time.

        With ``part`` (0 = h, 1 = c for LSTM), only that tensor of each state.
        """
        states = self.steps[layer * self.num_directions + direction]
        if part is None:
            return states
        return [s if isinstance(s, Tensor) else s[part] for s in states]
