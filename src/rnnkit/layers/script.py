"""The TorchScript form of ``rnnkit.RNN``, ``LSTM`` and ``GRU``: what ``torch.jit.script`` compiles.

TorchScript cannot compile the reference loop (its cells are Python objects), keyword-only
arguments or a result whose length depends on ``return_states``. So scripting a standard layer
compiles one of these instead (through the layer's ``__prepare_scriptable__``): a subclass of the
same ``torch.nn`` layer, sharing the parameters, whose ``forward(input, hx=None, lengths=None)``
calls torch's fused kernels exactly as the eager native path does, packing by ``lengths`` the way
``pack_padded_sequence(..., enforce_sorted=False)`` does. The numbers are the eager native path's
bit for bit. Unlike a scripted ``torch.nn.LSTM`` (whose overloaded ``forward`` only resolves
inside a scripted parent), the scripted layer can be called directly.

Not in TorchScript: ``PackedSequence`` input (pass ``lengths=``), ``return_states``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import _VF, Tensor, nn


def _sort_by_length(lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Lengths longest first, the order that sorts them and the order that undoes it."""
    sorted_lengths, order = torch.sort(lengths, descending=True)
    return sorted_lengths, order, torch.argsort(order)


def _pad(out: Tensor, batch_sizes: Tensor, batch_first: bool, steps: int, undo: Tensor) -> Tensor:
    """A packed output back to a padded batch in the caller's order, zero past each length."""
    padded, _ = _VF._pad_packed_sequence(out, batch_sizes, batch_first, 0.0, steps)
    return padded.index_select(0 if batch_first else 1, undo)


class ScriptLSTM(nn.LSTM):
    """``torch.nn.LSTM`` with rnnkit's ``lengths=``, in a form TorchScript compiles."""

    def forward(  # type: ignore[override]
        self,
        input: Tensor,
        hx: Optional[tuple[Tensor, Tensor]] = None,  # noqa: UP045 (TorchScript reads it)
        lengths: Optional[Tensor] = None,  # noqa: UP045
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not batched:
            input = input.unsqueeze(batch_dim)
        n = self.num_layers * (2 if self.bidirectional else 1)
        batch_size = input.size(batch_dim)
        h_size = self.proj_size if self.proj_size > 0 else self.hidden_size
        if hx is None:
            h = torch.zeros(n, batch_size, h_size, dtype=input.dtype, device=input.device)
            c = torch.zeros(n, batch_size, self.hidden_size, dtype=input.dtype, device=input.device)
        else:
            h, c = hx
            if not batched:
                h, c = h.unsqueeze(1), c.unsqueeze(1)
        if lengths is None:
            out, h_n, c_n = _VF.lstm(
                input,
                (h, c),
                self._flat_weights,
                self.bias,
                self.num_layers,
                self.dropout,
                self.training,
                self.bidirectional,
                self.batch_first,
            )
        else:
            sorted_lengths, order, undo = _sort_by_length(lengths)
            data, batch_sizes = _VF._pack_padded_sequence(
                input.index_select(batch_dim, order), sorted_lengths.cpu(), self.batch_first
            )
            out, h_n, c_n = _VF.lstm(
                data,
                batch_sizes,
                (h.index_select(1, order), c.index_select(1, order)),
                self._flat_weights,
                self.bias,
                self.num_layers,
                self.dropout,
                self.training,
                self.bidirectional,
            )
            out = _pad(out, batch_sizes, self.batch_first, input.size(1 - batch_dim), undo)
            h_n, c_n = h_n.index_select(1, undo), c_n.index_select(1, undo)
        if not batched:
            return out.squeeze(batch_dim), (h_n.squeeze(1), c_n.squeeze(1))
        return out, (h_n, c_n)


class _ScriptSingleState:
    """The forward of the layers whose state is one tensor (RNN, GRU)."""

    def forward(
        self,
        input: Tensor,
        hx: Optional[Tensor] = None,  # noqa: UP045 (TorchScript reads it)
        lengths: Optional[Tensor] = None,  # noqa: UP045
    ) -> tuple[Tensor, Tensor]:
        batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not batched:
            input = input.unsqueeze(batch_dim)
        n = self.num_layers * (2 if self.bidirectional else 1)
        if hx is None:
            h = torch.zeros(
                n, input.size(batch_dim), self.hidden_size, dtype=input.dtype, device=input.device
            )
        else:
            h = hx if batched else hx.unsqueeze(1)
        if lengths is None:
            out, h_n = self._run(input, h, None)
        else:
            sorted_lengths, order, undo = _sort_by_length(lengths)
            data, batch_sizes = _VF._pack_padded_sequence(
                input.index_select(batch_dim, order), sorted_lengths.cpu(), self.batch_first
            )
            out, h_n = self._run(data, h.index_select(1, order), batch_sizes)
            out = _pad(out, batch_sizes, self.batch_first, input.size(1 - batch_dim), undo)
            h_n = h_n.index_select(1, undo)
        if not batched:
            return out.squeeze(batch_dim), h_n.squeeze(1)
        return out, h_n

    def _run(
        self,
        x: Tensor,
        h: Tensor,
        batch_sizes: Optional[Tensor],  # noqa: UP045
    ) -> tuple[Tensor, Tensor]:
        """torch's kernel for this mode, on a padded (``batch_sizes`` None) or packed input."""
        w, b, L, p, train, bi = (
            self._flat_weights,
            self.bias,
            self.num_layers,
            self.dropout,
            self.training,
            self.bidirectional,
        )
        if batch_sizes is None:
            if self.mode == "GRU":
                out, h_n = _VF.gru(x, h, w, b, L, p, train, bi, self.batch_first)
            elif self.mode == "RNN_TANH":
                out, h_n = _VF.rnn_tanh(x, h, w, b, L, p, train, bi, self.batch_first)
            else:
                out, h_n = _VF.rnn_relu(x, h, w, b, L, p, train, bi, self.batch_first)
        elif self.mode == "GRU":
            out, h_n = _VF.gru(x, batch_sizes, h, w, b, L, p, train, bi)
        elif self.mode == "RNN_TANH":
            out, h_n = _VF.rnn_tanh(x, batch_sizes, h, w, b, L, p, train, bi)
        else:
            out, h_n = _VF.rnn_relu(x, batch_sizes, h, w, b, L, p, train, bi)
        return out, h_n


class ScriptGRU(_ScriptSingleState, nn.GRU):
    """``torch.nn.GRU`` with rnnkit's ``lengths=``, in a form TorchScript compiles."""


class ScriptRNN(_ScriptSingleState, nn.RNN):
    """``torch.nn.RNN`` with rnnkit's ``lengths=``, in a form TorchScript compiles."""


def scriptable(layer: nn.Module) -> nn.Module:
    """``layer`` (an ``rnnkit.RNN``/``LSTM``/``GRU``) as its Script class, same parameters."""
    cls = {"LSTM": ScriptLSTM, "GRU": ScriptGRU}.get(layer.mode, ScriptRNN)  # type: ignore[arg-type]
    view = cls.__new__(cls)
    view.__dict__.update(layer.__dict__)  # the same parameter dict: no copy of the weights
    view.__dict__.pop("backend", None)
    return view
