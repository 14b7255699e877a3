"""The time loop: one unroller for every cell, standard or custom.

It runs layers bottom to top and, within a layer, each direction over time, one step function
call per step. The input projection of a whole layer is hoisted out of the loop when the cell
offers one (``project_input``), so each step costs one matmul plus the gate maths. Variable
lengths are handled by a mask: past a sequence's end its state stays put and its output is zero,
so the reverse direction starts at each sequence's own last step and the final state is taken
there, exactly as ``torch.nn`` does with a ``PackedSequence``.

A cell, for this loop, is anything with

- ``step(x_t, state) -> (y_t, state)``, or, failing that, ``__call__(x_t, state) -> (y_t, state)``;
- optionally ``project_input(x) -> xp``, applied once to the whole ``(T, B, I)`` input, whose
  slices (taken once with ``unbind``) are then passed to ``step`` instead of ``x_t``; ``xp`` may
  be a tuple of ``(T, B, ...)`` tensors, and ``step`` then gets the tuple of their slices
  (``rnnkit.layers.hoist`` derives such a pair from a plain cell's forward);
- optionally ``sequence(x, state0) -> (ys, state_T)``, the whole ``(T, B, I)`` sequence at once:
  minGRU's parallel scan, the layer-normalised cells' fused engine with hand-written
  back-propagation. It replaces the step loop for that layer and direction when there is no
  mask, no per-step states are asked for and ``T > 1`` (one generated token takes the cheap
  step); the reverse direction runs on the time-flipped input and flips its outputs back. It must
  agree with the step loop to rounding, which is what the step loop is kept for: the readable
  reference, and the path for lengths and per-step states.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.layers.sequence import SequenceBatch, capturing_graph
from rnnkit.state import State, StepStates, map_state, stack_states, unstack_state


def _hold_where_padded(mask_t: Tensor, new: State, old: State) -> State:
    """Keep the old state for the batch rows whose sequence has ended (``mask_t`` False)."""
    return map_state(lambda a, b: torch.where(mask_t, a, b), new, old)


def unroll(
    cells: Sequence[Any],
    x: Tensor,
    initial: Sequence[State],
    *,
    num_layers: int,
    num_directions: int,
    mask: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    keep_steps: bool = False,
) -> tuple[Tensor, list[State], list[list[State]] | None]:
    """Run stacked, optionally bidirectional, cells over a time-major sequence.

    Args:
        cells: ``num_layers * num_directions`` cells, index ``layer * D + direction``.
        x: the input, ``(T, B, I)``.
        initial: one initial state per cell, each ``(B, ...)``.
        num_layers: L.
        num_directions: D, 1 or 2.
        mask: ``(T, B)`` booleans, True where a step is inside its sequence; None for all.
        dropout: probability of zeroing the outputs of every layer but the last.
        training: whether dropout is active.
        keep_steps: also return every state at every step.

    Returns:
        The last layer's outputs ``(T, B, D*H)``, the final state of every cell, and, with
        ``keep_steps``, ``steps[k][t]``, the state of cell ``k`` after reading step ``t``.
    """
    T = x.size(0)
    if mask is not None:
        mask = mask.unsqueeze(-1)  # (T, B, 1), broadcasts over features
    finals: list[State] = []
    steps: list[list[State]] | None = [] if keep_steps else None
    layer_input = x
    for layer in range(num_layers):
        outputs = []
        for direction in range(num_directions):
            k = layer * num_directions + direction
            cell = cells[k]
            sequence = getattr(cell, "sequence", None)
            # the whole sequence at once; one step (a generated token) takes the cheap step, and
            # so does a graph being captured (trace, ONNX export, compile): the engines write
            # into preallocated buffers inside an autograd Function, which tracing cannot follow
            if (
                sequence is not None
                and mask is None
                and steps is None
                and T > 1
                and not _capturing()
            ):
                xr = layer_input if direction == 0 else layer_input.flip(0)
                result = sequence(xr, initial[k])  # (T, B, H), final state; or None: declined
                if result is not None:
                    ys_all, state = result
                    outputs.append(ys_all if direction == 0 else ys_all.flip(0))
                    finals.append(state)
                    continue
            project = getattr(cell, "project_input", None)
            xs = project(layer_input) if project is not None else layer_input  # (T, B, G)
            step = getattr(cell, "step", cell)
            state = initial[k]
            # Slice once with unbind: indexing xs[t] per step makes each step's backward build
            # a zero tensor the size of the whole sequence, so training cost grew as T^2;
            # unbind's backward stacks the T slice gradients in one op.
            x_steps = _slices(xs)  # T x (B, G)
            mask_steps = mask.unbind(0) if mask is not None else None  # T x (B, 1)
            ys: list[Tensor] = [xs] * T  # placeholders, all overwritten
            kept: list[State] = [state] * T
            for t in range(T) if direction == 0 else range(T - 1, -1, -1):
                y, new = step(x_steps[t], state)
                if mask_steps is not None:
                    new = _hold_where_padded(mask_steps[t], new, state)
                    y = y.masked_fill(~mask_steps[t], 0.0)
                state = new
                ys[t] = y
                kept[t] = state
            outputs.append(torch.stack(ys))  # (T, B, H)
            finals.append(state)
            if steps is not None:
                steps.append(kept)
        layer_input = outputs[0] if num_directions == 1 else torch.cat(outputs, -1)
        if dropout > 0 and training and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, dropout, training=True)
    return layer_input, finals, steps


def run_layers(
    cells: Sequence[Any],
    batch: SequenceBatch,
    hx: State,
    *,
    num_layers: int,
    num_directions: int,
    dropout: float,
    training: bool,
    return_states: bool,
) -> tuple:
    """Unroll a prepared batch and give the result in ``torch.nn``'s form.

    ``hx`` is the whole stack's initial state, each tensor ``(L*D, B, ...)``. Returns
    ``(output, h_n)``, plus a ``StepStates`` with ``return_states``; the output has the form
    the input came in (padded, batch-first, unbatched or packed).
    """
    output, finals, steps = unroll(
        cells,
        batch.x,
        unstack_state(hx, num_layers * num_directions),
        num_layers=num_layers,
        num_directions=num_directions,
        mask=batch.mask,
        dropout=dropout,
        training=training,
        keep_steps=return_states,
    )
    h_n = stack_states(finals)
    if not batch.batched:
        h_n = map_state(lambda s: s.squeeze(1), h_n)
    result = (batch.restore(output), h_n)
    if steps is None:
        return result
    return (*result, StepStates(steps, num_layers, num_directions, batch.batched))


def _slices(xs: Tensor | tuple[Tensor, ...]) -> Sequence[Any]:
    """The per-step slices of a projected input, or of each part when it is a tuple."""
    if isinstance(xs, Tensor):
        return xs.unbind(0)
    return list(zip(*(part.unbind(0) for part in xs)))


def _capturing() -> bool:
    """Whether a graph is being captured: ``torch.jit.trace``, either ONNX exporter, compile."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or capturing_graph()
