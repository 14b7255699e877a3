"""Gradient flow through time: how much of the loss at step T reaches each earlier step.

For a recurrent layer and a batch of sequences, ``gradient_flow`` runs the reference path with
``return_states=True`` (the very tensors the unrolled graph uses), puts the loss at the last step
(or at every step), and measures

- ``||dL/dh_t||`` at every step ``t`` and layer (the mean over the batch of each sequence's norm);
  for an LSTM also ``||dL/dc_t||``, the cell state where the "constant error carousel" lives;
- the Jacobians ``dh_T/dh_t`` of each layer (one backward pass per hidden unit), their spectral
  norms and leading singular values;
- a verdict: the *memory horizon*, the distance ``T - t`` at which the gradient has fallen below
  ``threshold`` (1e-3) of its value at ``T`` ("vanishing"); "exploding" where it grows more than
  tenfold; "holds" where it does neither within the sequence, with the horizon extrapolated from
  the fitted decay rate when there is one.

A fresh model or a trained one, a standard layer or ``rnnkit.Recurrent`` with a custom cell: all
go through the same unroller. Example::

    layer = rnnkit.RNN(8, 64, batch_first=True)
    flow = gradient_flow(layer, torch.randn(16, 100, 8))
    flow.horizon, flow.verdict          # e.g. (12, 'vanishing')
    print(flow.summary())
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor, nn

from rnnkit.diagnose.states import reference_states
from rnnkit.plotting import pyplot

THRESHOLD = 1e-3
FLOOR = 1e-12  # the plots' lower limit
GROWTH = 10.0  # a gradient that grows more than this within the sequence is "exploding"

LossFn = Callable[[Tensor], Tensor]
"""Maps the layer's outputs ``(B, T, F)`` to per-step losses ``(B, T)``."""


@dataclass
class Verdict:
    verdict: str
    """"vanishing", "exploding" or "holds"."""
    horizon: int | None
    """The distance from T at which the gradient first falls below the threshold (vanishing)."""
    rate: float | None
    """Fitted change of log10 of the gradient per step back in time (negative: decay)."""
    estimate: float | None
    """The horizon extrapolated from ``rate`` (``log10(threshold) / rate``), when it decays."""
    growth: float
    """The largest ratio ||dL/dh_t|| / ||dL/dh_T|| over the sequence."""

    def tag(self, steps: int) -> str:
        """A short label for a sequence of ``steps``: "horizon 12", "exploding" or "> 99"."""
        if self.verdict == "vanishing":
            return f"horizon {self.horizon}"
        if self.verdict == "exploding":
            return "exploding"
        return f"> {steps - 1}"


def judge(norms: list[float] | Tensor, threshold: float = THRESHOLD) -> Verdict:
    """The verdict on one layer's gradient norms ``norms[t]``, t = 0..T-1, loss at T-1."""
    norms = torch.as_tensor(norms, dtype=torch.float64)
    back = norms.flip(0)  # back[d] = norm at distance d from the end
    ref = float(back[0])
    if not ref > 0 or not math.isfinite(ref):
        return Verdict("holds" if ref == 0 else "exploding", None, None, None, math.nan)
    ratio = back / ref
    growth = float(ratio.max())
    # least-squares slope of log10(ratio) against distance, over the finite positive ratios
    ok = (ratio > 0) & torch.isfinite(ratio)
    d = torch.arange(len(ratio), dtype=torch.float64)[ok]
    rate = None
    if len(d) >= 3:
        y = ratio[ok].log10()
        dm = d - d.mean()
        rate = float((dm * (y - y.mean())).sum() / (dm * dm).sum())
    below = (ratio < threshold).nonzero()
    estimate = math.log10(threshold) / rate if rate is not None and rate < 0 else None
    if not math.isfinite(growth) or growth > GROWTH:
        return Verdict("exploding", None, rate, None, growth)
    if len(below):
        return Verdict("vanishing", int(below[0]), rate, estimate, growth)
    return Verdict("holds", None, rate, estimate, growth)


@dataclass
class GradientFlow:
    """The measured gradient flow of one model; lists are indexed ``[layer][t]``."""

    label: str
    steps: int
    loss_at: str
    norms: list[list[float]]
    """Mean over the batch of ||dL/dh_t||, per layer and step."""
    cell_norms: list[list[float]] | None = None
    """LSTM: mean ||dL/dc_t||."""
    jacobian_norms: list[list[float]] | None = None
    """Mean spectral norm of dh_T/dh_t (its largest singular value), per layer and step."""
    singular_values: list[list[list[float]]] | None = None
    """Mean leading singular values of dh_T/dh_t, ``[layer][t][k]``."""
    verdicts: list[Verdict] = field(default_factory=list)
    """One per layer, from ``norms``."""
    threshold: float = THRESHOLD

    @property
    def horizon(self) -> int | None:
        """The first layer's memory horizon (the layer every input passes through)."""
        return self.verdicts[0].horizon

    @property
    def verdict(self) -> str:
        return self.verdicts[0].verdict

    def summary(self, layer: int = 0) -> str:
        """One line: the model, its verdict and its horizon."""
        v = self.verdicts[layer]
        where = f" (layer {layer})" if len(self.verdicts) > 1 else ""
        if v.verdict == "vanishing":
            text = (
                f"memory horizon {v.horizon} steps: the gradient falls below "
                f"{self.threshold:g} of its value at T there (vanishing)"
            )
        elif v.verdict == "exploding":
            text = f"exploding: the gradient grows to {v.growth:.3g}x its value at T"
        else:
            text = f"horizon > {self.steps - 1} steps: the gradient holds within the sequence"
            if v.estimate is not None:
                text += f" (extrapolated horizon ~{v.estimate:.0f})"
            elif v.rate is not None and v.rate > 0:
                text += f" (it grows slowly, {v.growth:.3g}x at most)"
        return f"{self.label}{where}: {text}"

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "verdicts"}
        out["verdicts"] = [v.__dict__ for v in self.verdicts]
        out["horizon"] = self.horizon
        out["verdict"] = self.verdict
        return out


def readout_loss(readout: Tensor) -> LossFn:
    """Per-step loss ``<readout, y_t>``: a fixed linear read-out, for models without a head."""
    return lambda out: out @ readout.to(out)


def gradient_flow(
    layer: nn.Module,
    x: Tensor,
    *,
    loss_fn: LossFn | None = None,
    loss_at: str = "last",
    jacobians: bool = True,
    jacobian_batch: int = 4,
    top_k: int = 3,
    label: str | None = None,
    threshold: float = THRESHOLD,
    seed: int = 0,
) -> GradientFlow:
    """Measure the gradient flow of ``layer`` (an rnnkit layer or ``Recurrent``) on ``x``.

    Args:
        layer: the recurrent part of a model; run on its reference path, in eval mode.
        x: batch-first input ``(B, T, I)`` (embed token ids first).
        loss_fn: outputs ``(B, T, F)`` -> per-step losses ``(B, T)``; default a fixed random
            unit read-out of the top layer (seeded by ``seed``).
        loss_at: "last" (the loss at the last step only) or "every" (summed over steps).
        jacobians: also compute ``dh_T/dh_t`` for the first ``jacobian_batch`` sequences.
        top_k: how many leading singular values to keep.

    Only the forward direction of a bidirectional layer is measured.
    """
    if loss_at not in ("last", "every"):
        raise ValueError(f"loss_at must be 'last' or 'every', got {loss_at!r}")
    if x.dim() != 3:
        raise ValueError(f"x must be batch-first (B, T, I), got shape {tuple(x.shape)}")
    T = x.size(1)
    out, states = reference_states(layer, x, grad=True)
    if loss_fn is None:
        g = torch.Generator().manual_seed(seed)
        v = torch.randn(out.size(-1), generator=g, dtype=torch.float64)
        loss_fn = readout_loss(v / v.norm())
    per_step = loss_fn(out)
    loss = per_step[:, -1].sum() if loss_at == "last" else per_step.sum()
    L = states.num_layers
    hs = [states.at(layer=k, part=0) for k in range(L)]
    is_lstm = not isinstance(states.steps[0][0], Tensor)
    cs = [states.at(layer=k, part=1) for k in range(L)] if is_lstm else []
    wrt = [h for layer_h in hs for h in layer_h] + [c for layer_c in cs for c in layer_c]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True, retain_graph=jacobians)
    norms_all = [
        float(g.norm(dim=-1).mean()) if g is not None else 0.0 for g in grads
    ]  # mean over the batch of each sequence's norm
    norms = [norms_all[k * T : (k + 1) * T] for k in range(L)]
    cell_norms = [norms_all[(L + k) * T : (L + k + 1) * T] for k in range(L)] if cs else None
    jac_norms = svals = None
    if jacobians:
        jac_norms, svals = [], []
        for k in range(L):
            s = jacobian_singular_values(hs[k], jacobian_batch)  # (T, b, H)
            mean = s.mean(1)  # over the sequences
            jac_norms.append(mean[:, 0].tolist())
            svals.append(mean[:, :top_k].tolist())
    return GradientFlow(
        label=label or type(layer).__name__,
        steps=T,
        loss_at=loss_at,
        norms=norms,
        cell_norms=cell_norms,
        jacobian_norms=jac_norms,
        singular_values=svals,
        verdicts=[judge(n, threshold) for n in norms],
        threshold=threshold,
    )


def jacobian_singular_values(hs: list[Tensor], batch: int) -> Tensor:
    """Singular values of ``dh_T/dh_t`` for every ``t``: ``(T, b, H)``, largest first.

    ``hs`` is one layer's per-step states (each ``(B, H)``, in one graph); row ``i`` of every
    Jacobian comes from one backward pass of ``h_T[:, i]``, for the first ``batch`` sequences
    at once (they do not interact).
    """
    h_last = hs[-1]
    b = min(batch, h_last.size(0))
    H = h_last.size(-1)
    rows: list[list[Tensor]] = []  # rows[i][t]: (b, H) = d h_T[:, i] / d h_t
    for i in range(H):
        g = torch.autograd.grad(h_last[:b, i].sum(), hs, retain_graph=True, allow_unused=True)
        rows.append([gi[:b] if gi is not None else torch.zeros_like(h_last[:b]) for gi in g])
    J = torch.stack([torch.stack(r) for r in rows], dim=2)  # (T, b, H_i, H_j)
    return torch.linalg.svdvals(J.double()).float()


def format_table(flows: list[GradientFlow], every: int | None = None) -> str:
    """A table of ||dL/dh_t|| by distance from T, one column per model and layer."""
    if not flows:
        return ""
    T = max(f.steps for f in flows)
    every = every or max(1, T // 10)
    cols = []
    for f in flows:
        for k, n in enumerate(f.norms):
            name = f.label + (f"/l{k}" if len(f.norms) > 1 else "")
            cols.append((name, n[::-1]))  # by distance from the end
    width = max(12, *(len(c[0]) + 2 for c in cols))
    lines = ["||dL/dh_t|| by distance T - t (loss at the last step, mean over the batch)"]
    lines.append(f"{'T - t':>7}" + "".join(f"{c[0]:>{width}}" for c in cols))
    distances = sorted({*range(0, T, every), T - 1})
    for d in distances:
        row = f"{d:>7}"
        for _, n in cols:
            row += f"{n[d]:>{width}.3e}" if d < len(n) else f"{'':>{width}}"
        lines.append(row)
    return "\n".join(lines)


def plot_flows(flows: list[GradientFlow], out, title: str | None = None) -> None:
    """Log-scale gradient norm against distance from T, one curve per model and layer; with
    Jacobians, a second panel of their spectral norms."""
    plt = pyplot("gradient-flow plots")

    with_jac = any(f.jacobian_norms for f in flows)
    fig, axes = plt.subplots(
        1, 2 if with_jac else 1, figsize=(12 if with_jac else 7, 4.4), dpi=120, squeeze=False
    )
    n_curves = sum(len(f.norms) for f in flows)
    cmap = plt.get_cmap("tab10" if n_curves <= 10 else "tab20")
    styles = [
        dict(color=cmap(i % cmap.N), ls=["-", "--", ":"][(i // cmap.N) % 3])
        for i in range(n_curves)
    ]
    ax = axes[0][0]
    i = 0
    for f in flows:
        for k, n in enumerate(f.norms):
            name = f.label + (f" layer {k}" if len(f.norms) > 1 else "")
            rel = [v / n[-1] if n[-1] else math.nan for v in n[::-1]]
            tag = f.verdicts[k].tag(f.steps)
            ax.plot(range(len(rel)), rel, label=f"{name} ({tag})", **styles[i])
            i += 1
    ax.axhline(flows[0].threshold, ls="--", color="gray", lw=1)
    ax.set_yscale("log")
    if ax.get_ylim()[0] < FLOOR:
        ax.set_ylim(bottom=FLOOR)  # far below the threshold nothing more is learned
    ax.set_xlabel("distance back in time, T - t")
    ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||")
    ax.set_title(title or "gradient flow through time (loss at the last step)")
    ax.legend(fontsize=7)
    if with_jac:
        ax = axes[0][1]
        i = 0
        for f in flows:
            for k, n in enumerate(f.jacobian_norms or []):
                name = f.label + (f" layer {k}" if len(f.norms) > 1 else "")
                ax.plot(range(len(n)), n[::-1], label=name, **styles[i])
                i += 1
        ax.set_yscale("log")
        if ax.get_ylim()[0] < FLOOR:
            ax.set_ylim(bottom=FLOOR)
        ax.set_xlabel("distance back in time, T - t")
        ax.set_ylabel("spectral norm of dh_T/dh_t")
        ax.set_title("Jacobian norms (largest singular value)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
