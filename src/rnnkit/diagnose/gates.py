"""Gate statistics of LSTM and GRU layers over a sequence.

The gates are recomputed from the per-step states the reference path returns: for layer ``k`` at
step ``t`` the pre-activations are ``W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``, with ``x_t`` the
input (layer 0) or the layer below's ``h_t``; the gates are then ``rnnkit.cells.functional``'s
``lstm_gates`` and ``gru_gates``, the very maths the cells run. Reported per gate: the mean
value, and the share of saturated values (below 0.05: closed; above 0.95: open), over every
unit, step and sequence.

A forget gate near 1 keeps the cell state (and its gradient); near 0.5, as torch initialises
it, the cell state halves every step. A GRU's update gate ``z`` plays the same part (in torch's
convention ``h' = (1 - z) n + z h``: z = 1 keeps the state).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rnnkit.cells import functional as cellfn
from rnnkit.diagnose.states import reference_states
from rnnkit.plotting import pyplot
from rnnkit.state import StepStates

LOW, HIGH = 0.05, 0.95
GATES = {"LSTM": ("input", "forget", "output"), "GRU": ("reset", "update")}


@dataclass
class GateSummary:
    mean: float
    closed: float
    """Share of values below 0.05."""
    open: float
    """Share of values above 0.95."""
    per_step: list[float] = field(default_factory=list)
    """Mean over units and sequences at each step."""
    histogram: list[int] = field(default_factory=list)
    """Counts in 20 equal bins over [0, 1]."""


@dataclass
class GateStats:
    label: str
    kind: str
    layers: list[dict[str, GateSummary]]

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "kind": self.kind,
            "layers": [{g: s.__dict__ for g, s in layer.items()} for layer in self.layers],
        }


class NotGatedError(TypeError, ValueError):
    """The layer has no gates these statistics know (a plain RNN, or a custom cell): a wrong type
    of layer for the library, and a one-line error on the command line."""


def _cell_of(layer) -> str:
    cells = getattr(layer, "cells", None)
    return f" of {type(cells[0]).__name__}" if cells else ""


def gate_values(
    layer: nn.Module, x: Tensor, states: StepStates | None = None
) -> list[dict[str, Tensor]]:
    """Every gate's values, ``(B, T, H)``, per layer, for batch-first input ``x``.

    ``layer`` is an ``rnnkit.LSTM`` or ``GRU`` (unidirectional, no projection). ``states``: the
    layer's own ``StepStates`` on ``x``, where the caller has them already (see
    ``reference_states``); otherwise the layer is run once for them.
    """
    mode = getattr(layer, "mode", None)
    if mode not in GATES:
        raise NotGatedError(
            f"gate statistics are for LSTM and GRU layers (torch's kernels), not "
            f"{type(layer).__name__}{_cell_of(layer)}"
        )
    if layer.bidirectional or getattr(layer, "proj_size", 0):
        raise ValueError("gate statistics take unidirectional layers without projections")
    if states is None:
        _, states = reference_states(layer, x)
    out = []
    below = x
    for k in range(layer.num_layers):
        h = torch.stack(states.at(layer=k, part=0), dim=1)  # (B, T, H)
        h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
        w_ih, w_hh = getattr(layer, f"weight_ih_l{k}"), getattr(layer, f"weight_hh_l{k}")
        b_ih = getattr(layer, f"bias_ih_l{k}", None)  # absent without bias
        b_hh = getattr(layer, f"bias_hh_l{k}", None)
        with torch.no_grad():
            xp = nn.functional.linear(below, w_ih, b_ih)
            hp = nn.functional.linear(h_prev, w_hh, b_hh)
            if mode == "LSTM":
                i, f, _, o = cellfn.lstm_gates(xp + hp)
                gates = {"input": i, "forget": f, "output": o}
            else:
                r, z = cellfn.gru_gates(xp, hp)
                gates = {"reset": r, "update": z}
        out.append(gates)
        below = h
    return out


def gated_models(models: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """The ``(label, layer)`` pairs whose layer is an LSTM or GRU, the ones with gates."""
    gated = [(label, m) for label, m in models if getattr(m, "mode", None) in GATES]
    if not gated:
        raise ValueError("gate statistics are for lstm and gru (--cell)")
    return gated


def gate_stats(layer: nn.Module, x: Tensor, label: str | None = None) -> GateStats:
    """Mean gate values and saturation, per layer and gate (see the module docstring)."""
    layers = []
    for gates in gate_values(layer, x):
        summary = {}
        for name, v in gates.items():
            summary[name] = GateSummary(
                mean=float(v.mean()),
                closed=float((v < LOW).float().mean()),
                open=float((v > HIGH).float().mean()),
                per_step=v.mean(dim=(0, 2)).tolist(),
                histogram=torch.histc(v.float(), bins=20, min=0.0, max=1.0).long().tolist(),
            )
        layers.append(summary)
    return GateStats(label or type(layer).__name__, layer.mode, layers)


def format_table(stats: list[GateStats]) -> str:
    lines = [
        f"{'model':<18}{'layer':>6}  {'gate':<8}{'mean':>8}{'< 0.05':>9}{'> 0.95':>9}",
    ]
    for s in stats:
        for k, layer in enumerate(s.layers):
            for name, g in layer.items():
                lines.append(
                    f"{s.label:<18}{k:>6}  {name:<8}{g.mean:>8.3f}"
                    f"{100 * g.closed:>8.1f}%{100 * g.open:>8.1f}%"
                )
    return "\n".join(lines)


def plot_gates(stats: list[GateStats], out, title: str | None = None) -> None:
    """Left: mean gate value per step; right: the distribution of gate values."""
    plt = pyplot("gate plots")

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.4), dpi=120)
    centres = [(i + 0.5) / 20 for i in range(20)]
    for s in stats:
        for k, layer in enumerate(s.layers):
            for name, g in layer.items():
                if name not in ("forget", "update", "input"):
                    continue
                tag = f"{s.label}{f' l{k}' if len(s.layers) > 1 else ''} {name}"
                a.plot(g.per_step, label=tag)
                total = max(1, sum(g.histogram))
                b.plot(centres, [c / total for c in g.histogram], marker=".", label=tag)
    a.set_xlabel("step t")
    a.set_ylabel("mean gate value")
    a.set_ylim(0, 1)
    a.set_title(title or "gates over the sequence")
    a.legend(fontsize=7)
    b.set_xlabel("gate value")
    b.set_ylabel("share of (unit, step, sequence)")
    b.set_title("distribution: mass at the ends = saturated")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
