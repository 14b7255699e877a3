"""The unrolled computation of a small model, printed the way a textbook draws it.

One cell, applied at every step with the same weights: ``x_t`` and ``h_{t-1}`` in, ``h_t`` out,
and a read-out ``y_t = W_hy h_t + b_y`` on top. ``unrolled_text`` draws the chain, then lists
every step's vectors with their shapes and values (and, for LSTM and GRU, the gates), taken
from the reference path's per-step states.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.cells.registry import cell_names, get_cell
from rnnkit.diagnose.models import check_seed, check_sizes
from rnnkit.diagnose.states import reference_states
from rnnkit.layers.build import make_layer


def unroll_cells() -> list[str]:
    """The registered cells with torch's kernels: their equations are printed step by step."""
    return [name for name in cell_names() if get_cell(name).fused]


EQUATIONS = {
    "RNN_TANH": ["h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)"],
    "RNN_RELU": ["h_t = relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)"],
    "LSTM": [
        "i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)",
        "c_t = f * c_{t-1} + i * g",
        "h_t = o * tanh(c_t)",
    ],
    "GRU": [
        "r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)",
        "z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)",
        "n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))",
        "h_t = (1 - z) * n + z * h_{t-1}",
    ],
}
NAMES = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def small_model(cell: str, input_size: int, hidden_size: int, output_size: int, seed: int = 0):
    """A one-layer batch-first rnnkit layer and a linear read-out, seeded."""
    if cell not in unroll_cells():
        raise ValueError(f"--cell must be one of {', '.join(unroll_cells())}; got {cell!r}")
    check_sizes(
        {"--input-size": input_size, "--hidden-size": hidden_size, "--output-size": output_size}
    )
    check_seed(seed)
    torch.manual_seed(seed)
    layer = make_layer(cell, input_size, hidden_size)  # type: ignore[arg-type]
    return layer, nn.Linear(hidden_size, output_size)


def unroll_input(text: str | None, steps: int, input_size: int, seed: int = 0) -> Tensor:
    """The sequence ``(T, I)`` to unroll: read from ``text`` (``"1,0;0,1"``: ',' within a step,
    ';' between steps), else ``steps`` seeded standard-normal vectors rounded to 2 decimals."""
    if text is None:
        check_sizes({"--steps": steps, "--input-size": input_size})
        check_seed(seed)
        g = torch.Generator().manual_seed(seed)
        return torch.randn(steps, input_size, generator=g).round(decimals=2)
    try:
        return torch.tensor([[float(v) for v in step.split(",")] for step in text.split(";")])
    except ValueError:
        raise ValueError(
            f"--values takes numbers, ',' within a step and ';' between steps; got {text!r}"
        ) from None


def _vec(v: Tensor, decimals: int) -> str:
    values = " ".join(f"{float(a):{decimals + 4}.{decimals}f}" for a in v.flatten())
    return f"{'(' + ', '.join(map(str, v.shape)) + ',)':<7} [{values} ]"


def chain_diagram(steps: int, name: str, width: int = 100) -> str:
    """``h_0 → [RNN] → h_1 → ...`` with each ``x_t`` below and ``y_t`` above."""
    box = f"[{name}]"
    unit = f" → {box} → h_{{t}}"
    lines = []
    t0 = 1
    while t0 <= steps:
        top, mid, bottom = "", f"h_{t0 - 1}", ""
        t = t0
        while t <= steps:
            piece = unit.replace("{t}", str(t))
            if len(mid) + len(piece) > width and t > t0:
                break
            centre = len(mid) + 3 + len(box) // 2
            top = top.ljust(centre) + f"y_{t}"
            mid += piece
            bottom = bottom.ljust(centre) + f"x_{t}"
            t += 1
        arrows = "".join("↑" if c == "y" else " " for c in top)
        lines += [top, arrows, mid, arrows, bottom]
        t0 = t
        if t0 <= steps:
            lines.append("")
    return "\n".join(line.rstrip() for line in lines)


def unrolled_text(layer: nn.Module, head: nn.Module, x: Tensor, decimals: int = 3) -> str:
    """The unrolled chain of ``layer`` (one layer, batch-first) and ``head`` on one sequence
    ``x`` of shape ``(T, I)``, step by step."""
    from rnnkit.diagnose.gates import gate_values

    mode = layer.mode
    if layer.num_layers != 1 or layer.bidirectional:
        raise ValueError("the unrolled picture is drawn for one unidirectional layer")
    T = x.size(0)
    out, states = reference_states(layer, x.unsqueeze(0))
    with torch.no_grad():
        ys = head(out[0])  # (T, O)
    hs = states.at(layer=0, part=0)
    cs = states.at(layer=0, part=1) if mode == "LSTM" else None
    gates = gate_values(layer, x.unsqueeze(0), states)[0] if mode in ("LSTM", "GRU") else {}
    name = NAMES[mode]
    kind = f" ({mode[4:].lower()})" if mode.startswith("RNN_") else ""
    n_hidden, n_in, n_out = layer.hidden_size, x.size(1), ys.size(1)
    lines = [
        f"The unrolled {name}{kind}: one cell, the same weights at every step, over T = {T} steps.",
        "",
        chain_diagram(T, name),
        "",
        "Each step:",
        *(f"    {eq}" for eq in EQUATIONS[mode]),
        "    y_t = W_hy h_t + b_y",
        "",
        "Parameters (shared by every step):",
    ]
    params = [(n.replace("_l0", ""), p) for n, p in layer.named_parameters()]
    params += [("W_hy", head.weight), ("b_y", head.bias)]
    lines.append("    " + ", ".join(f"{n} {tuple(p.shape)}" for n, p in params))
    lines.append("")
    zero = torch.zeros(n_hidden)
    lines.append(f"h_0     {_vec(zero, decimals)}   (the initial state)")
    if cs is not None:
        lines.append(f"c_0     {_vec(zero, decimals)}")
    for t in range(T):
        lines.append("")
        lines.append(f"t = {t + 1}")
        lines.append(f"  x_{t + 1:<4}{_vec(x[t], decimals)}   input, I = {n_in}")
        for g, v in gates.items():
            lines.append(f"  {g[0]}{'':<5}{_vec(v[0, t], decimals)}   {g} gate")
        if cs is not None:
            lines.append(f"  c_{t + 1:<4}{_vec(cs[t][0], decimals)}   cell state")
        lines.append(f"  h_{t + 1:<4}{_vec(hs[t][0], decimals)}   hidden state, H = {n_hidden}")
        lines.append(f"  y_{t + 1:<4}{_vec(ys[t], decimals)}   output, O = {n_out}")
    return "\n".join(lines)
