"""``rnnkit.Recurrent``: any cell, unrolled with everything a ``torch.nn`` layer has.

Write a cell that maps ``(x_t, state) -> (y_t, state)`` (the state a tensor or a tuple of
tensors) and ``Recurrent`` gives it stacking, bidirectional runs, ``batch_first``, unbatched
input, ``lengths=`` and ``PackedSequence``, initial states and per-step states, from the same
unroller the standard layers' reference path uses. No extra code is needed in the cell: its
input side (the ``nn.Linear`` on ``x_t`` and the elementwise work on its result) is found by
tracing the forward with ``torch.fx`` and run once over the whole sequence, the rest per step
(``rnnkit.layers.hoist``; ``hoist=False`` or a ``hoist = False`` cell attribute turns it off).

Optional cell attributes it uses when present:

- ``initial_state(batch_size, *, dtype, device)``: the zero state (default: zeros ``(B, H)``);
- ``project_input(x)``: the part of the step that depends on ``x`` only, hoisted out of the loop;
  then ``step(xp_t, state)`` is called with its slices;
- ``output_size``: the size of ``y_t`` when it differs from ``hidden_size``.
- ``sequence(x, state0) -> (ys, state_T)``: the whole ``(T, B, I)`` sequence at once (a scan,
  a fused engine), used instead of the step loop when there are no lengths and no per-step
  states (see ``rnnkit.layers.unroll``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit.layers.hoist import hoist as hoist_cell
from rnnkit.layers.hoist import wants_hoisting
from rnnkit.layers.sequence import check_lengths, to_time_major
from rnnkit.layers.step_program import attach
from rnnkit.layers.unroll import _capturing, run_layers
from rnnkit.state import State, leaves, map_state, stack_states


class Recurrent(nn.Module):
    r"""Unroll a custom cell over time, in layers and directions.

    Args:
        cell: a cell class (or any callable) built as ``cell(in_size, hidden_size, **cell_kwargs)``
            once per layer and direction; ``in_size`` is ``input_size`` for layer 0 and
            ``D * output_size`` above it.
        input_size: features per input step, I.
        hidden_size: the cell's state size, H.
        num_layers: stacked layers, L.
        batch_first: input and output are ``(B, T, ...)`` instead of ``(T, B, ...)``.
        dropout: dropout on the outputs of every layer but the last, in training.
        bidirectional: add a reverse-time direction (D = 2) and concatenate the outputs.
        device, dtype: where and in what precision to put the parameters.
        hoist: split a plain cell's forward so that its input side (the ``nn.Linear`` on
            ``x_t`` and the elementwise work on its result) runs once over the whole sequence
            and only the state-dependent rest runs per step (``rnnkit.layers.hoist``). Same
            numbers as the plain loop to rounding; False keeps one ``cell(x_t, state)`` call
            per step. A cell opts out on its own with a ``hoist = False`` attribute.
        **cell_kwargs: passed to every ``cell(...)`` call.

    Forward: ``(input, hx=None, lengths=None, return_states=False)``, as ``rnnkit.LSTM``;
    ``hx`` has the cell's state structure with every tensor stacked to ``(L*D, B, ...)``.
    Returns ``(output, h_n)`` (and ``states`` with ``return_states``).

    Example::

        >>> rnn = rnnkit.Recurrent(rnnkit.LayerNormLSTMCell, 8, 16, num_layers=2)
        >>> out, (h, c) = rnn(torch.randn(5, 3, 8))
        >>> out.shape, h.shape
        (torch.Size([5, 3, 16]), torch.Size([2, 3, 16]))
    """

    def __init__(
        self,
        cell: Callable[..., nn.Module],
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        hoist: bool = True,
        **cell_kwargs: Any,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero, got {value}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be an int greater than zero, got {num_layers!r}")
        if not isinstance(batch_first, bool):
            raise TypeError(
                f"batch_first should be of type bool, got: {type(batch_first).__name__}"
            )
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not 0 <= dropout <= 1
        ):
            raise ValueError(f"dropout should be a number in [0, 1], got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.dropout, self.bidirectional = (
            batch_first,
            float(dropout),
            bidirectional,
        )
        D = 2 if bidirectional else 1
        cells: list[nn.Module] = []
        in_size = input_size
        for _ in range(num_layers):
            layer = [cell(in_size, hidden_size, **cell_kwargs) for _ in range(D)]
            cells += layer
            in_size = D * getattr(layer[0], "output_size", hidden_size)
        self.cells = nn.ModuleList(cells)
        self.hoist = hoist
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    def __prepare_scriptable__(self) -> nn.Module:
        raise RuntimeError(
            "rnnkit.Recurrent cannot be compiled by torch.jit.script (its cells are Python "
            "modules of any form): use torch.jit.trace, torch.onnx.export or torch.compile"
        )

    def __getstate__(self) -> dict[str, Any]:
        # the hoisted steps are derived from the cells: rebuilt at the next forward, never saved
        state = self.__dict__.copy()
        state.pop("_hoisted", None)
        return state

    def _step_cells(self, steps: int = 2) -> list[Any]:
        """The cells as the unroller runs them over ``steps`` steps: hoisted where they allow it."""
        cells = list(self.cells)
        # one step (a generated token) gains nothing from a whole-sequence input side; a graph
        # being captured (trace, ONNX, compile) sees the plain call: fx tracing inside another
        # tracer is not something to rely on
        # (_capturing first: under a tracer, steps is a traced value and comparing it warns)
        if not getattr(self, "hoist", True) or _capturing() or steps < 2:
            return cells
        cache = self.__dict__.setdefault("_hoisted", {})
        for k, cell in enumerate(cells):
            if not wants_hoisting(cell):
                continue
            # the tracer reads training flags as constants (a forward may branch on them)
            key = (k, id(cell), tuple(m.training for m in cell.modules()))
            if key not in cache:
                cache[key] = attach(hoist_cell(cell))
            hoisted = cache[key]
            if hoisted is not None and hoisted.cell is cell:
                cells[k] = hoisted
        return cells

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> State:
        """The zero state of the whole stack, each tensor ``(L*D, B, ...)``."""
        return stack_states([self._cell_zero(c, batch_size, dtype, device) for c in self.cells])

    def _cell_zero(self, cell: nn.Module, batch_size: int, dtype, device) -> State:
        ref = next(self.parameters(), None)
        dtype = dtype or (ref.dtype if ref is not None else torch.get_default_dtype())
        device = device or (ref.device if ref is not None else None)
        make = getattr(cell, "initial_state", None)
        if make is not None:
            return make(batch_size, dtype=dtype, device=device)
        return torch.zeros(batch_size, self.hidden_size, dtype=dtype, device=device)

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: State | None = None,
        lengths: Tensor | None = None,
        return_states: bool = False,
    ):
        # lengths and return_states are not keyword-only: the legacy ONNX exporter passes
        # every argument by position
        name = type(self).__name__
        batched = True
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("pass either a PackedSequence or lengths=, not both")
            data = input.data
            batch_size = int(input.batch_sizes[0])
            if data.dim() != 2:
                raise RuntimeError(f"{name}: packed input must have 2 dimensions, got {data.dim()}")
        else:
            data = input
            if input.dim() not in (2, 3):
                raise ValueError(
                    f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead"
                )
            batched = input.dim() == 3
            if not batched:
                if lengths is not None:
                    raise ValueError("lengths= needs batched 3-D input, got a 2-D tensor")
                input = input.unsqueeze(0 if self.batch_first else 1)
            batch_size = input.size(0 if self.batch_first else 1)
            if lengths is not None:
                lengths = check_lengths(
                    lengths, batch_size, input.size(1 if self.batch_first else 0)
                )
        self._check_input(data)
        hx = self._check_state(hx, batch_size, batched, data)
        batch = to_time_major(input, batch_first=self.batch_first, lengths=lengths)
        batch.batched = batched
        return run_layers(
            self._step_cells(batch.x.size(0)),
            batch,
            hx,
            num_layers=self.num_layers,
            num_directions=2 if self.bidirectional else 1,
            dropout=self.dropout,
            training=self.training,
            return_states=return_states,
        )

    def _check_input(self, data: Tensor) -> None:
        ref = next(self.parameters(), None)
        if ref is not None and data.dtype != ref.dtype:
            raise ValueError(
                f"{type(self).__name__} input dtype ({data.dtype}) does not match weight dtype "
                f"({ref.dtype}). Convert input: input.to({ref.dtype}), or convert model: "
                f"model.to({data.dtype})"
            )
        if data.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {data.size(-1)}"
            )

    def _check_state(self, hx: State | None, batch_size: int, batched: bool, data: Tensor) -> State:
        zero = self.initial_state(batch_size, dtype=data.dtype, device=data.device)
        if hx is None:
            return zero
        want, got = leaves(zero), leaves(hx)
        if isinstance(hx, Tensor) != isinstance(zero, Tensor) or len(want) != len(got):
            raise TypeError(
                f"hx must have the cell's state structure: "
                f"{'a tensor' if isinstance(zero, Tensor) else f'a tuple of {len(want)} tensors'}"
            )
        if not batched:
            for i, g in enumerate(got):
                if g.dim() != want[i].dim() - 1:
                    raise RuntimeError(
                        f"For unbatched 2-D input, hx[{i}] should be {want[i].dim() - 1}-D, "
                        f"got {g.dim()}-D"
                    )
            hx = map_state(lambda s: s.unsqueeze(1), hx)
            got = leaves(hx)
        for i, (w, g) in enumerate(zip(want, got)):
            if g.shape != w.shape:
                raise RuntimeError(
                    f"Expected hidden[{i}] size {tuple(w.shape)}, got {list(g.shape)}"
                )
        return hx
