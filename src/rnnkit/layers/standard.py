"""``rnnkit.RNN``, ``LSTM`` and ``GRU``: ``torch.nn``'s layers, plus a reference path and more.

Each class subclasses its ``torch.nn`` namesake, so arguments, parameter names, initialisation,
constructor checks, ``state_dict`` keys and ``flatten_parameters`` are torch's own. ``forward``
adds three things torch does not have:

- ``lengths=``: per-sequence lengths beside a padded batch, instead of packing;
- ``return_states=True``: every layer's and direction's state at every step (a ``StepStates``);
- two paths behind one behaviour, chosen with ``backend``: ``"native"`` calls the fused kernels
  torch itself uses (oneDNN on CPU, cuDNN on GPU); ``"reference"`` runs the readable time loop
  of ``rnnkit.layers.unroll`` over the step functions of ``rnnkit.cells.functional`` (forward
  only, where nothing needs a gradient, those same steps traced and run in rnnkit's C++ loop,
  ``rnnkit.layers.step_program``; ``RNNKIT_KERNELS=0`` keeps the Python loop). The
  default, ``"auto"``, takes native unless the call needs the reference (``return_states``).
  ``GRU`` has a third, ``"fused"``: rnnkit's own C++ time loop on the CPU (see ``GRU``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.backend import check_backend
from rnnkit.cells import functional as cellfn
from rnnkit.cells import kernels as native_kernels
from rnnkit.cells.kernels import dense
from rnnkit.cells.layer_norm_fused import gru_sequence
from rnnkit.layers.script import scriptable
from rnnkit.layers.sequence import capturing_graph, check_lengths, to_time_major
from rnnkit.layers.step_program import pure_step_sequence
from rnnkit.layers.unroll import run_layers
from rnnkit.state import State, map_state


class _BoundCell:
    """One layer and direction of a standard layer, seen as a cell by the unroller."""

    def __init__(self, step_fn: Any, w_ih: Tensor, w_hh: Tensor, b_ih, b_hh, w_hr=None):
        self.step_fn, self.w_ih, self.w_hh, self.b_ih, self.b_hh = step_fn, w_ih, w_hh, b_ih, b_hh
        self.w_hr = w_hr

    def project_input(self, x: Tensor) -> Tensor:
        return dense.linear(x, self.w_ih, self.b_ih)  # (T, B, G*H), all steps in one matmul

    def sequence(self, x: Tensor, state0: State) -> tuple[Tensor, State] | None:
        """Forward only, the same step over the whole sequence in rnnkit's C++ loop
        (``rnnkit.layers.step_program``); None where that cannot run: the step loop runs."""
        return pure_step_sequence(
            self.step_fn, x, state0, self.w_ih, self.b_ih, self.w_hh, self.b_hh, self.w_hr
        )

    def step(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        if self.w_hr is not None:
            state = self.step_fn(xp, state, self.w_hh, self.b_hh, self.w_hr)
        else:
            state = self.step_fn(xp, state, self.w_hh, self.b_hh)
        return (state if isinstance(state, Tensor) else state[0]), state


class _FusedGRUCell(_BoundCell):
    """A GRU layer and direction whose whole sequence runs in rnnkit's fused engine."""

    def sequence(self, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        b_hh = self.b_hh if self.b_hh is not None else self.w_hh.new_zeros(self.w_hh.shape[0])
        inputs = (self.w_ih, self.b_ih)
        hs = gru_sequence(self.project_input, x, h0, self.w_hh, None, b_hh, 0.0, inputs)
        return hs, hs[-1]


class _RecurrentLayer:
    """What ``RNN``, ``LSTM`` and ``GRU`` add to their ``torch.nn`` base (a mixin)."""

    mode: str
    num_layers: int
    bidirectional: bool
    batch_first: bool
    hidden_size: int
    proj_size: int
    bias: bool
    dropout: float
    training: bool
    backend: str

    # -- public --------------------------------------------------------------------------------
    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: State | None = None,
        lengths: Tensor | None = None,
        return_states: bool = False,
    ):
        """Run the layer; see the class docstring. Returns ``(output, h_n)`` as ``torch.nn``
        does, and ``(output, h_n, states)`` with ``return_states=True``.

        ``lengths`` and ``return_states`` may also be given by position: the legacy ONNX
        exporter passes every argument of ``forward`` that way.
        """
        backend = self._pick_backend(return_states)
        if backend == "fused" and not self._fused_can_run(input, hx, lengths):
            backend = "native"
        if lengths is not None and capturing_graph():
            backend = "reference"  # packing cannot be captured; the mask can (same numbers)
        if lengths is not None:
            if isinstance(input, PackedSequence):
                raise ValueError("pass either a PackedSequence or lengths=, not both")
            if input.dim() != 3:
                raise ValueError(
                    f"lengths= needs batched 3-D input, got a {input.dim()}-D tensor; "
                    "unbatched input is a single sequence and has no lengths"
                )
            batch, steps = (0, 1) if self.batch_first else (1, 0)
            lengths = check_lengths(lengths, input.size(batch), input.size(steps))
        if backend == "native":
            return self._forward_native(input, hx, lengths)
        return self._forward_reference(input, hx, lengths, return_states, backend == "fused")

    def initial_state(
        self, batch_size: int, *, dtype: torch.dtype | None = None, device=None
    ) -> State:
        """The zero state for a batch: ``h0`` ``(L*D, B, H)``, or ``(h0, c0)`` for LSTM."""
        weight = self.weight_hh_l0  # type: ignore[attr-defined]
        dtype = dtype or weight.dtype
        device = device or weight.device
        n = self.num_layers * (2 if self.bidirectional else 1)
        h_size = self.proj_size if self.proj_size > 0 else self.hidden_size
        h = torch.zeros(n, batch_size, h_size, dtype=dtype, device=device)
        if self.mode == "LSTM":
            return h, torch.zeros(n, batch_size, self.hidden_size, dtype=dtype, device=device)
        return h

    def __prepare_scriptable__(self) -> nn.Module:
        """What ``torch.jit.script`` compiles: ``rnnkit.layers.script``'s form of this layer,
        sharing the parameters, called as ``(input, hx=None, lengths=None)`` on the native
        kernels (TorchScript cannot compile the reference loop or ``return_states``)."""
        return scriptable(self)

    # -- the two paths --------------------------------------------------------------------------
    def _pick_backend(self, return_states: bool) -> str:
        if self.backend == "native" and return_states:
            raise ValueError(
                "return_states=True needs the reference path (the fused kernels do not expose "
                "per-step states): use backend='auto' or 'reference'"
            )
        if self.backend == "reference" or return_states:
            return "reference"
        return "fused" if self.backend == "fused" else "native"

    def _fused_can_run(self, input, hx, lengths) -> bool:
        """Whether rnnkit's fused GRU engine can take this call (else torch's kernels do)."""
        if isinstance(input, PackedSequence) or lengths is not None:
            return False
        if torch.onnx.is_in_onnx_export() or capturing_graph():
            return False
        tensors = [input, *self._flat_weights]  # type: ignore[attr-defined]
        if hx is not None:
            tensors.append(hx)
        return native_kernels.usable(*tensors) is not None

    def _forward_native(self, input, hx, lengths):
        base_forward = super().forward  # type: ignore[misc]
        if lengths is None:
            return base_forward(input, hx)
        steps = input.size(1 if self.batch_first else 0)
        packed = pack_padded_sequence(
            input, lengths.cpu(), batch_first=self.batch_first, enforce_sorted=False
        )
        output, h_n = base_forward(packed, hx)
        output, _ = pad_packed_sequence(output, self.batch_first, total_length=steps)
        return output, h_n

    def _forward_reference(self, input, hx, lengths, return_states, fused=False):
        input, hx, batched = self._check_and_prepare(input, hx)
        batch = to_time_major(input, batch_first=self.batch_first, lengths=lengths)
        batch.batched = batched
        cells = self._bound_cells()
        if fused:  # the same weights (weight drop's dropped W_hh included), whole sequences
            cells = [_FusedGRUCell(c.step_fn, c.w_ih, c.w_hh, c.b_ih, c.b_hh) for c in cells]
        return run_layers(
            cells,
            batch,
            hx,
            num_layers=self.num_layers,
            num_directions=2 if self.bidirectional else 1,
            dropout=self.dropout,
            training=self.training,
            return_states=return_states,
        )

    # -- helpers of the reference path ----------------------------------------------------------
    def _check_and_prepare(self, input, hx):
        """Torch's own input checks, in torch's order and with its messages and types."""
        is_lstm = self.mode == "LSTM"
        batched = True
        if isinstance(input, PackedSequence):
            data, batch_sizes = input.data, input.batch_sizes
            if hx is None:
                hx = self.initial_state(int(batch_sizes[0]), dtype=data.dtype, device=data.device)
            self.check_forward_args(data, hx, batch_sizes)  # type: ignore[attr-defined]
            return input, hx, batched
        name = "RNN" if self.mode.startswith("RNN") else self.mode
        if input.dim() not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        batched = input.dim() == 3
        if not batched:
            input = input.unsqueeze(0 if self.batch_first else 1)
        if hx is None:
            hx = self.initial_state(
                input.size(0 if self.batch_first else 1), dtype=input.dtype, device=input.device
            )
        else:
            want = 3 if batched else 2
            parts = hx if is_lstm else (hx,)
            if any(p.dim() != want for p in parts):
                got = ", ".join(f"{p.dim()}-D" for p in parts)
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(
                    f"For {kind} input, hx{' and cx' if is_lstm else ''} should also be "
                    f"{want}-D but got ({got}) tensor{'s' if is_lstm else ''}"
                )
            if not batched:
                hx = map_state(lambda s: s.unsqueeze(1), tuple(hx) if is_lstm else hx)
        self.check_forward_args(input, hx, None)  # type: ignore[attr-defined]
        return input, hx, batched

    def _bound_cells(self) -> list[_BoundCell]:
        step_fn = {
            "RNN_TANH": cellfn.rnn_tanh_step,
            "RNN_RELU": cellfn.rnn_relu_step,
            "LSTM": cellfn.lstm_step,
            "GRU": cellfn.gru_step,
        }[self.mode]
        cells = []
        for layer in range(self.num_layers):
            for suffix in ("", "_reverse")[: 2 if self.bidirectional else 1]:
                s = f"_l{layer}{suffix}"
                cells.append(
                    _BoundCell(
                        step_fn,
                        getattr(self, "weight_ih" + s),
                        getattr(self, "weight_hh" + s),
                        getattr(self, "bias_ih" + s) if self.bias else None,
                        getattr(self, "bias_hh" + s) if self.bias else None,
                        getattr(self, "weight_hr" + s) if self.proj_size > 0 else None,
                    )
                )
        return cells


class RNN(_RecurrentLayer, nn.RNN):
    r"""Elman RNN, drop-in for :class:`torch.nn.RNN`, with a reference path and lengths.

    .. math:: h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    (``nonlinearity="relu"`` replaces tanh by ReLU).

    Args:
        input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout,
        bidirectional, device, dtype: exactly as :class:`torch.nn.RNN`.
        backend: ``"auto"`` (default), ``"native"`` (torch's fused kernels) or ``"reference"``
            (the explicit time loop). All give the same numbers.

    Forward: ``rnn(input, h0=None, lengths=None, return_states=False)``. Input ``(T, B, I)``,
    ``(B, T, I)`` with ``batch_first``, unbatched ``(T, I)`` or a ``PackedSequence``. Returns
    ``output`` ``(T, B, D*H)`` and ``h_n`` ``(L*D, B, H)``; with ``lengths`` the output past each
    length is zero and ``h_n`` is each sequence's state at its own last step.

    Example::

        >>> rnn = rnnkit.RNN(10, 20, num_layers=2)
        >>> out, h_n = rnn(torch.randn(5, 3, 10))
        >>> out.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend = check_backend(backend, owner="RNN")


class LSTM(_RecurrentLayer, nn.LSTM):
    r"""LSTM, drop-in for :class:`torch.nn.LSTM`, with a reference path and lengths.

    .. math::
        (i, f, g, o) &= (\sigma, \sigma, \tanh, \sigma)(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1}
                        + b_{hh}) \\
        c_t &= f \odot c_{t-1} + i \odot g \qquad h_t = o \odot \tanh(c_t)

    and ``h_t = W_{hr} h_t`` when ``proj_size > 0``.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        proj_size, device, dtype: exactly as :class:`torch.nn.LSTM`.
        backend: ``"auto"`` (default), ``"native"`` or ``"reference"``.

    Forward: ``lstm(input, (h0, c0)=None, lengths=None, return_states=False)``; returns
    ``output, (h_n, c_n)``, shapes as :class:`torch.nn.LSTM`.

    Example::

        >>> lstm = rnnkit.LSTM(10, 20, batch_first=True)
        >>> x = torch.randn(3, 7, 10)
        >>> out, (h, c) = lstm(x, lengths=torch.tensor([7, 2, 5]))
        >>> bool(out[1, 2:].eq(0).all())
        True
    """

    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend = check_backend(backend, owner="LSTM")


class GRU(_RecurrentLayer, nn.GRU):
    r"""GRU, drop-in for :class:`torch.nn.GRU`, with a reference path and lengths.

    .. math::
        r &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \qquad
        z = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n &= \tanh(W_{in} x_t + b_{in} + r \odot (W_{hn} h_{t-1} + b_{hn})) \qquad
        h_t = (1 - z) \odot n + z \odot h_{t-1}

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        device, dtype: exactly as :class:`torch.nn.GRU`.
        backend: ``"auto"`` (default), ``"native"``, ``"reference"`` or ``"fused"``.

    ``backend="fused"`` runs each layer and direction in rnnkit's own CPU engine
    (``rnnkit.cells.layer_norm_fused.gru_sequence``, the C++ loop of ``rnnkit.cells.kernels``, built
    at first use): ``W_ih x + b_ih`` for the whole sequence in one matmul, then per step one product
    for ``W_hh h + b_hh`` (in float32 on a ``W_hh`` laid out once per call, for rnnkit's own
    per-step kernel with AVX-512 or for oneDNN; ATen's ``addmm`` in float64) and one fused pass over
    the batch rows for the gates, forward and backward (back-propagation through time written out,
    weight gradients as whole-sequence products). torch's CPU GRU instead dispatches one ATen op
    after another per step. The numbers match torch's to rounding (float32 exp and tanh are
    polynomials accurate to a few ulp). Where the engine cannot run, the call goes to torch's own
    kernels (``"native"``, torch's numbers exactly): on CUDA, in dtypes other than float32 and
    float64, with ``lengths=`` or a ``PackedSequence``, while tracing, scripting, exporting or
    compiling, and when the kernels are off (``RNNKIT_KERNELS=0``) or cannot be built;
    ``return_states=True`` takes the reference loop, as with ``"auto"``. A single step (``T = 1``)
    runs the reference step, the same equations. Inter-layer ``dropout`` in training is the
    unroller's ``F.dropout``, as on the reference path.

    Example::

        >>> gru = rnnkit.GRU(10, 20, bidirectional=True)
        >>> out, h_n, states = gru(torch.randn(5, 3, 10), return_states=True)
        >>> states.h.shape  # (L*D, T, B, H)
        torch.Size([2, 5, 3, 20])
        >>> fast = rnnkit.GRU(10, 20, num_layers=2, backend="fused")
        >>> fast(torch.randn(5, 3, 10))[0].shape
        torch.Size([5, 3, 20])
    """

    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend = check_backend(backend, owner="GRU", fused=True)
