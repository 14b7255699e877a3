r"""Weight drop on torch's fused layers: DropConnect on the recurrent matrices ``W_hh``.

Merity, Keskar & Socher 2017 ("Regularizing and Optimizing LSTM Language Models", AWD-LSTM,
section 2) regularise the hidden-to-hidden connections by dropping entries of the recurrent
matrices rather than activations: one mask per matrix per forward, the same at every step,

.. math:: \tilde W_{hh} = W_{hh} \odot M / (1 - p), \quad M \sim \mathrm{Bernoulli}(1 - p),

so the time loop itself is untouched and torch's fused kernel still runs it: the forward draws
the dropped matrices and hands them to the kernel in place of the parameters. The gradient flows
through the mask to the parameter itself, whose name stays torch's (``weight_hh_l0``, not AWD's
``weight_hh_l0_raw``), so a ``torch.nn`` state dict loads unchanged. In evaluation nothing is
dropped and the layer is ``rnnkit.LSTM`` (``GRU``, ``RNN``).

Example::

    >>> lstm = WeightDropLSTM(8, 16, weight_drop=0.5)
    >>> out, (h, c) = lstm(torch.randn(5, 3, 8))
    >>> sorted(lstm.state_dict()) == sorted(torch.nn.LSTM(8, 16).state_dict())
    True
"""

from __future__ import annotations

import warnings
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.regularisers import check_probability
from rnnkit.layers.standard import GRU, LSTM, RNN


class _WeightDrop:
    """What the three ``WeightDrop*`` layers add to ``rnnkit.RNN``/``LSTM``/``GRU`` (a mixin)."""

    weight_drop: float
    training: bool
    _flat_weights: list
    _flat_weights_names: list[str]
    _dropped: dict[str, Tensor] | None

    def _init_weight_drop(self, weight_drop: float) -> None:
        self.weight_drop = check_probability("--weight-drop", weight_drop)
        self._dropped = None

    def forward(self, input, hx=None, **kwargs: Any):
        if not (self.training and self.weight_drop > 0):
            return super().forward(input, hx, **kwargs)  # type: ignore[misc]
        # torch rebuilds its list when a parameter was replaced (``load_state_dict``,
        # ``functional_call``); doing it first keeps it from undoing the swap below
        self._update_flat_weights()  # type: ignore[attr-defined]
        dropped = {
            name: F.dropout(w, self.weight_drop, training=True)
            for name, w in zip(self._flat_weights_names, self._flat_weights)
            if name.startswith("weight_hh")
        }
        saved = self._flat_weights
        # the fused kernel reads this list: lend it the dropped matrices for this one call
        self._flat_weights = [dropped.get(n, w) for n, w in zip(self._flat_weights_names, saved)]
        self._dropped = dropped  # for the reference path's cells (``_bound_cells``)
        try:
            with warnings.catch_warnings():
                # cuDNN copies weights that are not in its one flat buffer, and says so at every
                # call; fresh dropped matrices never are, by design
                warnings.filterwarnings("ignore", message=".*single contiguous chunk of memory")
                return super().forward(input, hx, **kwargs)  # type: ignore[misc]
        finally:
            self._flat_weights, self._dropped = saved, None

    def _bound_cells(self):
        cells = super()._bound_cells()  # type: ignore[misc]
        if self._dropped:
            # torch lists the weights layer by layer, direction by direction: the cells' order
            names = [n for n in self._flat_weights_names if n.startswith("weight_hh")]
            for cell, name in zip(cells, names):
                cell.w_hh = self._dropped[name]
        return cells

    def __getstate__(self) -> dict:
        state = super().__getstate__()  # type: ignore[misc]
        return {**state, "_dropped": None}


class WeightDropRNN(_WeightDrop, RNN):
    """``rnnkit.RNN`` with weight drop on every ``weight_hh`` (module docstring).

    Args: as :class:`rnnkit.RNN`, plus ``weight_drop``, the probability of dropping each entry.
    """

    def __init__(self, *args: Any, weight_drop: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_drop(weight_drop)


class WeightDropLSTM(_WeightDrop, LSTM):
    """``rnnkit.LSTM`` with weight drop on every ``weight_hh`` (module docstring)."""

    def __init__(self, *args: Any, weight_drop: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_drop(weight_drop)


class WeightDropGRU(_WeightDrop, GRU):
    """``rnnkit.GRU`` with weight drop on every ``weight_hh`` (module docstring)."""

    def __init__(self, *args: Any, weight_drop: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_weight_drop(weight_drop)
