"""``rnnkit.RNNCell``, ``LSTMCell`` and ``GRUCell``: torch's cells, plus a reference path.

Each subclasses its ``torch.nn`` namesake (same arguments, parameters, initialisation and call
signature: ``cell(x, h) -> h``, or ``(h, c)`` for LSTM). ``backend="reference"`` computes the
step with the pure functions of ``rnnkit.cells.functional`` instead of torch's fused kernel.

They also speak the unroller's cell protocol (``project_input``, ``step``, ``initial_state``), so
``rnnkit.Recurrent(rnnkit.LSTMCell, ...)`` stacks them like any custom cell.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.backend import check_backend
from rnnkit.cells import functional as cellfn
from rnnkit.state import State, from_leaves, leaves, map_state


class _CellMixin:
    """Reference path and unroller protocol shared by the three cells."""

    input_size: int
    hidden_size: int
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None
    bias_hh: Tensor | None
    backend: str

    def _step(self, xp: Tensor, state: State) -> State:
        raise NotImplementedError

    def project_input(self, x: Tensor) -> Tensor:
        """``W_ih x + b_ih`` for any leading shape; the unroller hoists it out of the loop."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        """One step from a projected input: ``(y_t, state)``, where ``y_t`` is ``h_t``."""
        state = self._step(xp, state)
        return (state if isinstance(state, Tensor) else state[0]), state

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> State:
        """The zero state: ``h`` ``(B, H)``, or ``(h, c)`` for LSTM."""
        h = torch.zeros(
            batch_size,
            self.hidden_size,
            dtype=dtype or self.weight_hh.dtype,
            device=device or self.weight_hh.device,
        )
        return (h, h.clone()) if isinstance(self, LSTMCell) else h

    def __prepare_scriptable__(self) -> nn.Module:
        """What ``torch.jit.script`` compiles: this cell as its ``torch.nn`` base class, sharing
        the parameters (TorchScript cannot compile the reference path; both give the same
        numbers to rounding)."""
        base = next(c for c in type(self).__mro__ if c in (nn.RNNCell, nn.LSTMCell, nn.GRUCell))
        view = base.__new__(base)
        view.__dict__.update(self.__dict__)  # the same parameter dict: no copy of the weights
        del view.__dict__["backend"]
        return view

    def _reference_forward(self, input: Tensor, hx: State | None) -> State:
        """torch's cell checks (same types, clearer messages), then the pure step."""
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        parts = () if hx is None else leaves(hx)
        for i, part in enumerate(parts):
            if part.dim() not in (1, 2):
                what = "hidden" if isinstance(hx, Tensor) else f"hx[{i}]"
                raise ValueError(
                    f"{name}: Expected {what} to be 1D or 2D, got {part.dim()}D instead"
                )
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
            parts = tuple(p.unsqueeze(0) for p in parts)
        if input.size(1) != self.input_size:
            raise RuntimeError(
                f"{name}: input has inconsistent input_size: got {input.size(1)}, "
                f"expected {self.input_size}"
            )
        if input.dtype != self.weight_ih.dtype:
            raise RuntimeError(
                f"{name}: input dtype ({input.dtype}) does not match weight dtype "
                f"({self.weight_ih.dtype})"
            )
        if not parts:
            state = self.initial_state(input.size(0), dtype=input.dtype, device=input.device)
        else:
            for i, part in enumerate(parts):
                if part.size(0) != input.size(0):
                    raise RuntimeError(
                        f"{name}: input batch size {input.size(0)} doesn't match hidden{i} "
                        f"batch size {part.size(0)}"
                    )
                if part.size(1) != self.hidden_size:
                    raise RuntimeError(
                        f"{name}: hidden{i} has inconsistent hidden_size: got {part.size(1)}, "
                        f"expected {self.hidden_size}"
                    )
            state = from_leaves(hx, parts)
        out = self._step(self.project_input(input), state)
        if not batched:
            out = map_state(lambda o: o.squeeze(0), out)
        return out


class RNNCell(_CellMixin, nn.RNNCell):
    r"""Elman cell, drop-in for :class:`torch.nn.RNNCell`.

    .. math:: h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})  \quad (\text{or ReLU})

    Args: as :class:`torch.nn.RNNCell`, plus ``backend`` (``"auto"``, ``"native"``,
    ``"reference"``). Input ``(B, I)`` or ``(I,)``, hidden ``(B, H)`` or ``(H,)``.

    Example::

        >>> cell = rnnkit.RNNCell(10, 20)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend = check_backend(backend, owner=type(self).__name__)

    def _step(self, xp: Tensor, state: State) -> State:
        if self.nonlinearity == "tanh":
            return cellfn.rnn_tanh_step(xp, state, self.weight_hh, self.bias_hh)
        if self.nonlinearity == "relu":
            return cellfn.rnn_relu_step(xp, state, self.weight_hh, self.bias_hh)
        raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        if self.backend == "reference":
            return self._reference_forward(input, hx)  # type: ignore[return-value]
        return super().forward(input, hx)


class LSTMCell(_CellMixin, nn.LSTMCell):
    r"""LSTM cell, drop-in for :class:`torch.nn.LSTMCell`; gates (i, f, g, o) in that order.

    .. math::
        c' = \sigma(f) \odot c + \sigma(i) \odot \tanh(g) \qquad h' = \sigma(o) \odot \tanh(c')

    Args: as :class:`torch.nn.LSTMCell`, plus ``backend``. Returns ``(h', c')``.

    Example::

        >>> cell = rnnkit.LSTMCell(10, 20)
        >>> h, c = cell(torch.randn(3, 10))
    """

    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend = check_backend(backend, owner=type(self).__name__)

    def _step(self, xp: Tensor, state: State) -> State:
        return cellfn.lstm_step(xp, state, self.weight_hh, self.bias_hh)  # type: ignore[arg-type]

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        if self.backend == "reference":
            return self._reference_forward(input, hx)  # type: ignore[return-value]
        return super().forward(input, hx)


class GRUCell(_CellMixin, nn.GRUCell):
    r"""GRU cell, drop-in for :class:`torch.nn.GRUCell`; gates (r, z, n), torch's convention.

    .. math::
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})) \qquad
        h' = (1 - z) \odot n + z \odot h

    Args: as :class:`torch.nn.GRUCell`, plus ``backend``.

    Example::

        >>> cell = rnnkit.GRUCell(10, 20)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend = check_backend(backend, owner=type(self).__name__)

    def _step(self, xp: Tensor, state: State) -> State:
        return cellfn.gru_step(xp, state, self.weight_hh, self.bias_hh)  # type: ignore[arg-type]

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        if self.backend == "reference":
            return self._reference_forward(input, hx)  # type: ignore[return-value]
        return super().forward(input, hx)
