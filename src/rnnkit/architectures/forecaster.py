"""A forecaster over numeric features: recurrent layers read the window, a linear head forecasts.

``features (B, T, F) -> recurrent layers -> dropout -> linear head -> (B, T, horizon, Q)``: at
every step the head reads the hidden state and forecasts the next ``horizon`` values, ``Q``
numbers per value (one point forecast, or one per quantile). A direct multi-step forecaster uses
the last step's output; an autoregressive one uses ``horizon = 1`` at every step and is rolled
forward by feeding its own forecasts back (``rollout``). The recurrent part is any rnnkit layer
from ``make_layer``; the time loop is the layer's, never rewritten here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.layers.build import CellSpec, make_layer
from rnnkit.state import State


class Forecaster(nn.Module):
    """Forecast ``horizon`` future values from every step of a numeric sequence.

    Args:
        input_size: features per step (the target's own past value is one of them).
        horizon: values forecast from each step.
        outputs: numbers per forecast value (1, or the number of quantiles).
        cell, hidden_size, num_layers, dropout: the recurrent layers.
        layer_options: ``make_layer``'s options for the recurrent layers (``recurrent_dropout``,
            ``weight_drop``, ``zoneout``, ``init``, ``max_dependency``).

    Shapes: ``(B, T, input_size)`` in; ``(B, T, horizon, outputs)`` out, and the final state.

    Example::

        >>> net = Forecaster(3, horizon=12, outputs=3, hidden_size=32)
        >>> out, state = net(torch.randn(8, 24, 3))
        >>> out.shape
        torch.Size([8, 24, 12, 3])
    """

    def __init__(
        self,
        input_size: int,
        horizon: int,
        *,
        outputs: int = 1,
        cell: CellSpec = "lstm",
        layer_options: Mapping[str, Any] | None = None,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.horizon, self.outputs = horizon, outputs
        self.rnn = make_layer(
            cell,
            input_size,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            **(layer_options or {}),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, horizon * outputs)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        out, state = self.rnn(x, state)  # (B, T, H)
        y = self.head(self.dropout(out))  # (B, T, horizon * Q)
        return y.unflatten(-1, (self.horizon, self.outputs)), state

    @torch.no_grad()
    def rollout(self, x: Tensor, steps: int, point: int = 0) -> Tensor:
        """Autoregressive forecast: read ``x`` (B, T, 1), then feed output ``point`` (the point
        forecast or median) back as the next input, ``steps`` times. Returns (B, steps, Q)."""
        if x.shape[-1] != 1:
            raise ValueError("an autoregressive rollout takes the target alone as input")
        out, state = self(x)
        step = out[:, -1, 0]  # (B, Q)
        forecasts = [step]
        for _ in range(steps - 1):
            out, state = self(step[:, point, None, None], state)  # (B, 1, 1) in
            step = out[:, -1, 0]
            forecasts.append(step)
        return torch.stack(forecasts, dim=1)  # (B, steps, Q)


class ForecasterEnsemble(nn.Module):
    """``members`` independently initialised Forecasters whose outputs are averaged.

    Each member is trained on its own loss (``member_outputs``); the ensemble forecasts the mean
    of the members' outputs (quantiles too, member by member), which lowers the variance that
    one network's random initialisation brings, most on small series. Same shapes as
    ``Forecaster``; the state is the list of the members' states.

    Example::

        >>> net = ForecasterEnsemble(1, 12, outputs=3, hidden_size=16, members=4)
        >>> net.member_outputs(torch.randn(8, 24, 1)).shape
        torch.Size([4, 8, 24, 12, 3])
    """

    def __init__(
        self, input_size: int, horizon: int, *, outputs: int = 1, members: int = 2, **kw
    ) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        self.horizon, self.outputs = horizon, outputs
        self.members = nn.ModuleList(
            Forecaster(input_size, horizon, outputs=outputs, **kw) for _ in range(members)
        )

    def member_outputs(self, x: Tensor) -> Tensor:
        """(members, B, T, horizon, Q): each member's forecasts, for the training loss."""
        return torch.stack([m(x)[0] for m in self.members])

    def forward(self, x: Tensor, state: list[State] | None = None) -> tuple[Tensor, list[State]]:
        states = state if state is not None else [None] * len(self.members)
        outs, new = zip(*(m(x, s) for m, s in zip(self.members, states)))
        return torch.stack(outs).mean(0), list(new)

    rollout = Forecaster.rollout
