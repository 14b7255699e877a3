r"""Step-wise regularisers of a recurrent cell: variational dropout, zoneout, weight drop.

``RegularisedCell`` wraps any cell that ``rnnkit.Recurrent`` can unroll and adds, in training:

- **variational (recurrent) dropout** (Gal & Ghahramani 2016, "A Theoretically Grounded
  Application of Dropout in Recurrent Neural Networks", section 4): one dropout mask per
  sequence on the input ``x_t`` and one on the hidden state where it enters the recurrent
  matrix, the same masks at every step,

  .. math:: h_t = \mathrm{cell}(x_t \odot m_x,\; h_{t-1} \odot m_h), \qquad
            m \sim \mathrm{Bernoulli}(1 - p) / (1 - p);

- **zoneout** (Krueger et al. 2016, "Zoneout: Regularizing RNNs by Randomly Preserving Hidden
  Activations", section 2): each unit of every state tensor keeps its previous value with
  probability ``p``, a fresh mask at every step; in evaluation the expectation,

  .. math:: s_t = d_t \odot s_{t-1} + (1 - d_t) \odot \tilde s_t, \quad
            d_t \sim \mathrm{Bernoulli}(p); \qquad
            s_t = p\, s_{t-1} + (1 - p)\, \tilde s_t \text{ in evaluation};

- **weight drop** (DropConnect on ``W_hh``; Merity, Keskar & Socher 2017, "Regularizing and
  Optimizing LSTM Language Models", section 2): dropout on the recurrent matrix itself, drawn
  once per forward and used at every step. The standard layers do this on torch's fused kernels
  (``rnnkit.layers.weight_drop``); here it serves the unrolled cells with a ``weight_hh``.

In evaluation the wrapper is the wrapped cell, number for number (zoneout aside, which takes its
expectation). The masks are drawn in ``project_input``, which the unroller calls once per layer
and direction with the whole sequence: so a model stepped one token at a time in *training*
(a teacher-forced decoder) draws its masks at every step.

Where the hidden mask goes: for torch's three cells (``rnnkit.RNNCell``, ``LSTMCell``,
``GRUCell``) exactly on ``h`` inside ``W_hh h``, so that a GRU's interpolation ``z h`` reads the
undropped state; the same for ``LayerNormGRUCell`` (``lngru``). For other cells whose state is a
tuple ``(h, c, ...)`` (an LSTM's, ``lnlstm``), on ``h`` as the cell reads it: there ``h`` feeds
only the gates. For other cells whose state is ``h`` alone (``mingru``, ``minlstm``, a user's)
the state is also the memory the cell interpolates with, and dropping it would erase memory,
not regularise a connection: only the input mask applies (the minimal cells have no recurrent
matrix at all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from rnnkit.cells import functional as cellfn
from rnnkit.cells.layer_norm_gru import LayerNormGRUCell
from rnnkit.cells.standard import GRUCell, LSTMCell, RNNCell
from rnnkit.state import State, from_leaves, leaves


def check_probability(flag: str, p: float) -> float:
    """``p`` as a float in [0, 1), or a ``ValueError`` naming ``flag``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"{flag} must be a number in [0, 1), got {p!r}")
    return float(p)


def dropout_mask(like: Tensor, shape: tuple[int, ...], p: float) -> Tensor:
    """An inverted-dropout mask: each entry ``1 / (1 - p)`` with probability ``1 - p``, else 0."""
    keep = torch.full(shape, 1.0 - p, dtype=like.dtype, device=like.device)
    return torch.bernoulli(keep) / (1.0 - p)


def zoneout(old: State, new: State, p: float, training: bool) -> State:
    """Krueger et al.'s update for every state tensor: keep each unit of ``old`` with
    probability ``p`` (a fresh mask per call) in training, ``p old + (1 - p) new`` in eval."""

    def mix(o: Tensor, n: Tensor) -> Tensor:
        if not training:
            return torch.lerp(n, o, p)  # n + p (o - n)
        keep = torch.bernoulli(torch.full_like(n, p))
        return torch.lerp(n, o, keep)

    return from_leaves(new, [mix(o, n) for o, n in zip(leaves(old), leaves(new))])


class RegularisedCell(nn.Module):
    """A cell with variational dropout, zoneout and weight drop (module docstring).

    Args:
        input_size, hidden_size: as the wrapped cell's.
        base: the wrapped cell's class, built as ``base(input_size, hidden_size, **cell_kwargs)``
            and kept as ``self.cell``.
        recurrent_dropout: p of the per-sequence input and hidden masks.
        zoneout: p of keeping each previous state unit, per step.
        weight_drop: p of dropping each entry of the cell's ``weight_hh``, per forward.

    Example::

        >>> rnn = rnnkit.Recurrent(RegularisedCell, 8, 16, base=rnnkit.LSTMCell, zoneout=0.1)
        >>> out, (h, c) = rnn(torch.randn(5, 3, 8))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        base: Callable[..., nn.Module],
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        weight_drop: float = 0.0,
        **cell_kwargs: Any,
    ) -> None:
        super().__init__()
        self.cell = base(input_size, hidden_size, **cell_kwargs)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.recurrent_dropout = check_probability("--recurrent-dropout", recurrent_dropout)
        self.zoneout = check_probability("--zoneout", zoneout)
        self.weight_drop = check_probability("--weight-drop", weight_drop)
        self._standard = isinstance(self.cell, (RNNCell, LSTMCell, GRUCell))
        name = type(self.cell).__name__
        if self.weight_drop > 0:
            if not isinstance(getattr(self.cell, "weight_hh", None), Tensor):
                raise ValueError(
                    f"--weight-drop needs a recurrent matrix weight_hh; {name} has none"
                )
            if not self._standard and hasattr(self.cell, "step"):
                raise ValueError(f"--weight-drop: {name} steps with step(); give it forward()")
        if hasattr(self.cell, "output_size"):
            self.output_size = self.cell.output_size
        self._draws: dict[str, Tensor] = {}  # this forward's masks (per layer and direction)

    def __getstate__(self) -> dict:
        # the masks are non-leaf tensors of the last forward: copies start without them
        state = super().__getstate__()
        return {**state, "_draws": {}}

    def initial_state(self, batch_size: int, *, dtype=None, device=None) -> State:
        make = getattr(self.cell, "initial_state", None)
        if make is not None:
            return make(batch_size, dtype=dtype, device=device)
        return torch.zeros(batch_size, self.hidden_size, dtype=dtype, device=device)

    @property
    def sequence(self) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
        """The time loop's whole-sequence hook: the wrapped cell's scan (``mingru``,
        ``minlstm``) on the masked input, when nothing changes the step itself (zoneout, weight
        drop); else None, and the time loop steps. (The layer-normalised cells' engines read
        ``h`` through a matrix, which the hidden mask must reach, so they step here.)"""
        if self.zoneout > 0 or self.weight_drop > 0 or not hasattr(self.cell, "scan"):
            return None
        return self._sequence

    def _sequence(self, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        return self.cell.scan(self._draw(x), h0)  # such cells read no h through a matrix

    def project_input(self, x: Tensor) -> Tensor:
        """Draw this sequence's masks, mask the input ``(T, B, I)`` and project it."""
        x = self._draw(x)
        project = getattr(self.cell, "project_input", None)
        return project(x) if project is not None else x

    def _draw(self, x: Tensor) -> Tensor:
        """Draw the masks of the sequence ``x`` ``(T, B, I)``; return it masked."""
        draws: dict[str, Tensor] = {}
        if self.training and self.recurrent_dropout > 0:
            p = self.recurrent_dropout
            width = getattr(self.cell, "output_size", self.hidden_size)
            draws["x"] = dropout_mask(x, x.shape[1:], p)  # (B, I): the same at every step
            draws["h"] = dropout_mask(x, (x.size(1), width), p)  # (B, H)
            x = x * draws["x"]
        if self.training and self.weight_drop > 0:
            draws["w_hh"] = F.dropout(self.cell.weight_hh, self.weight_drop, training=True)
        self._draws = draws
        return x

    def step(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        """One step of the wrapped cell with this sequence's masks, then zoneout."""
        h_mask, w_hh = self._draws.get("h"), self._draws.get("w_hh")
        if self._standard:
            new = self._standard_step(xp, state, h_mask, w_hh)
            y = new if isinstance(new, Tensor) else new[0]
        elif isinstance(self.cell, LayerNormGRUCell) and self._draws:
            y = new = self._layer_norm_gru_step(xp, state, h_mask, w_hh)
        else:
            read = state
            if h_mask is not None and not isinstance(state, Tensor):
                read = (state[0] * h_mask, *state[1:])  # LSTM-like: h feeds the gates only
            y, new = self._cell_step(xp, read, w_hh)
        if self.zoneout > 0:
            zoned = zoneout(state, new, self.zoneout, self.training)
            if y is leaves(new)[0]:  # the output is the state's h: it is zoned too
                y = leaves(zoned)[0]
            new = zoned
        return y, new

    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One step from a raw input ``x_t``, as a one-step sequence: it draws its own masks."""
        return self.step(self.project_input(x.unsqueeze(0))[0], state)

    # -- the wrapped cell's step ----------------------------------------------------------------
    def _standard_step(self, xp: Tensor, state: State, h_mask, w_hh) -> State:
        """torch's cells, the mask on ``h`` only inside ``W_hh h`` (Gal & Ghahramani, sec. 4)."""
        cell = self.cell
        w = cell.weight_hh if w_hh is None else w_hh
        h = state if isinstance(state, Tensor) else state[0]
        h_in = h if h_mask is None else h * h_mask
        hp = F.linear(h_in, w, cell.bias_hh)
        if isinstance(cell, LSTMCell):
            return cellfn.lstm_update(xp + hp, state[1])
        if isinstance(cell, GRUCell):
            return cellfn.gru_update(xp, hp, h)
        return cellfn.ACTIVATIONS[f"RNN_{cell.nonlinearity.upper()}"](xp + hp)

    def _layer_norm_gru_step(self, x: Tensor, h: Tensor, h_mask, w_hh) -> Tensor:
        """``LayerNormGRUCell``'s step with the mask on ``h`` only inside ``W_hh h``."""
        cell = self.cell
        w = cell.weight_hh if w_hh is None else w_hh
        h_in = h if h_mask is None else h * h_mask
        xp = cell.ln_ih(F.linear(x, cell.weight_ih)) + cell.bias_ih  # (B, 3H)
        hp = cell.ln_hh(F.linear(h_in, w)) + cell.bias_hh  # (B, 3H)
        return cellfn.gru_update(xp, hp, h)

    def _cell_step(self, xp: Tensor, state: State, w_hh) -> tuple[Tensor, State]:
        if w_hh is not None:  # the cell reads its own weight_hh: lend it the dropped one
            return functional_call(self.cell, {"weight_hh": w_hh}, (xp, state), strict=False)
        return getattr(self.cell, "step", self.cell)(xp, state)
