"""Fresh models to diagnose: a cell type, a size and an initialisation, built from a seed."""

from __future__ import annotations

import math

import torch
from torch import nn

from rnnkit import init as rinit
from rnnkit.cells import LayerNormLSTMCell
from rnnkit.cells.registry import cell_names, get_cell
from rnnkit.layers import Recurrent, make_layer

CELLS = cell_names()
"""The registered cells (``rnnkit.cells.registry``): rnn (tanh), rnn_relu, lstm, gru, lnlstm."""
LARGEST_SETTING = 1e4
"""The largest ``--gain`` or ``--forget-bias`` magnitude taken."""
INITS = ("default", "orthogonal", "irnn", "chrono")
CHRONO_CELLS = ("lstm", "gru", "lnlstm", "lngru")
"""The cells chrono initialisation fits: those with a forget (GRU: keep) gate."""
MAX_SIZE = 2**16
"""The largest size, step count or batch a diagnosis of a fresh model takes."""


def check_sizes(sizes: dict[str, int]) -> None:
    """Raise ``ValueError`` naming the flag unless each ``{"--flag": value}`` lies in
    [1, ``MAX_SIZE``]: a diagnosis is of small models, and a huge size would only allocate."""
    for flag, value in sizes.items():
        if not 1 <= value <= MAX_SIZE:
            raise ValueError(f"{flag} must lie in [1, {MAX_SIZE}], got {value}")


def check_seed(seed: int) -> None:
    """One range for every seed flag: torch takes no more (nor numpy nor random)."""
    if not 0 <= seed <= 2**63 - 1:
        raise ValueError(f"--seed must lie in [0, 2**63 - 1], got {seed}")


def fresh_layer(
    cell: str,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    init: str = "default",
    gain: float = 1.0,
    forget_bias: float | None = None,
    max_dependency: int | None = None,
    seed: int = 0,
) -> nn.Module:
    """A batch-first layer of ``cell`` with torch's initialisation, then ``init`` on top:

    - ``default``: torch's own (uniform in ``±1/sqrt(H)``; LSTM forget gate near 0.5);
    - ``orthogonal``: orthogonal recurrent blocks times ``gain`` (``rnnkit.init.orthogonal_``);
    - ``irnn``: identity recurrence times ``gain`` (``rnnkit.init.irnn_``; plain RNNs only);
    - ``chrono``: forget-gate biases ``log(U(1, max_dependency - 1))`` (``rnnkit.init.chrono_``;
      lstm, gru, lnlstm, lngru).

    ``forget_bias`` sets an LSTM's forget-gate bias (a GRU's update gate; ``lnlstm`` takes it in
    its constructor, default 1 there).
    """
    check_sizes(
        {"--input-size": input_size, "--hidden-size": hidden_size, "--num-layers": num_layers}
    )
    check_seed(seed)
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    for flag, value in (("--gain", gain), ("--forget-bias", forget_bias)):
        # float32 weights: a value past this saturates every gate anyway, and far past it overflows
        if value is not None and not (math.isfinite(value) and abs(value) <= LARGEST_SETTING):
            raise ValueError(f"{flag} must be finite and within ±{LARGEST_SETTING:g}, got {value}")
    if init == "chrono" and cell not in CHRONO_CELLS:
        raise ValueError(f"--init chrono is for {', '.join(CHRONO_CELLS)}, not {cell}")
    if init == "chrono" and (max_dependency is None or max_dependency < 2):
        raise ValueError(f"--init chrono needs --max-dependency >= 2, got {max_dependency}")
    torch.manual_seed(seed)
    if get_cell(cell).fused is None and init not in ("default", "chrono"):
        raise ValueError(f"the custom {cell} cell takes only the default or chrono initialisation")
    if cell == "lnlstm":
        kwargs = {} if forget_bias is None else {"forget_bias": forget_bias}
        layer: nn.Module = Recurrent(
            LayerNormLSTMCell, input_size, hidden_size, num_layers, batch_first=True, **kwargs
        )
        if init == "chrono":
            rinit.chrono_(layer, max_dependency)  # type: ignore[arg-type]
        return layer
    layer = make_layer(cell, input_size, hidden_size, num_layers=num_layers)  # type: ignore[arg-type]
    if init == "chrono":
        rinit.chrono_(layer, max_dependency)  # type: ignore[arg-type]
    elif init == "orthogonal":
        rinit.orthogonal_(layer, gain)
    elif init == "irnn":
        rinit.irnn_(layer, gain)
    if forget_bias is not None:
        rinit.forget_gate_bias_(layer, forget_bias)
    return layer


def fresh_models(
    cells: list[str],
    inits: list[str],
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    gain: float = 1.0,
    forget_bias: float | None = None,
    max_dependency: int | None = None,
    seed: int = 0,
) -> list[tuple[str, nn.Module]]:
    """``(label, layer)`` for every cell x init (x forget bias) that fits.

    ``irnn`` is tried on plain RNNs only and ``lnlstm`` takes only the default initialisation;
    with ``forget_bias`` an LSTM or GRU is built with and without it, to compare, and
    ``lnlstm`` with it only (its constructor sets 1 by default).
    """
    models = []
    for cell in cells:
        for init in inits:
            if init == "irnn" and cell not in ("rnn", "rnn_relu"):
                continue
            if init == "chrono" and cell not in CHRONO_CELLS:
                continue
            if get_cell(cell).fused is None and init not in ("default", "chrono"):
                continue
            biases: list[float | None] = [None]
            if init == "chrono":
                pass  # chrono sets the forget gate's biases itself
            elif forget_bias is not None and cell in ("lstm", "gru"):
                biases.append(forget_bias)  # with and without, to compare
            elif forget_bias is not None and cell == "lnlstm":
                biases = [forget_bias]  # its constructor sets 1 by default
            for fb in biases:
                layer = fresh_layer(
                    cell,
                    input_size,
                    hidden_size,
                    num_layers=num_layers,
                    init=init,
                    gain=gain,
                    forget_bias=fb,
                    max_dependency=max_dependency,
                    seed=seed,
                )
                models.append((describe(cell, init, gain, fb), layer))
    if not models:
        raise ValueError(
            "no model fits those --cell and --init (irnn is for rnn, rnn_relu; chrono for "
            f"{', '.join(CHRONO_CELLS)})"
        )
    return models


def random_input(batch_size: int, steps: int, input_size: int, seed: int = 0) -> torch.Tensor:
    """Seeded standard-normal input ``(B, T, I)`` for fresh models."""
    check_sizes({"--batch-size": batch_size, "--steps": steps, "--input-size": input_size})
    check_seed(seed)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, steps, input_size, generator=g)


def describe(cell: str, init: str = "default", gain: float = 1.0, forget_bias=None) -> str:
    """A short label: ``lstm``, ``rnn orthogonal``, ``lstm fb=1``."""
    parts = [cell]
    if init != "default":
        parts.append(init if gain == 1.0 else f"{init}x{gain:g}")
    if forget_bias is not None:
        parts.append(f"fb={forget_bias:g}")
    return " ".join(parts)
