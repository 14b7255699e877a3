"""rnnkit.RNNCell / LSTMCell / GRUCell against torch.nn's cells, and their reference step."""

from __future__ import annotations

import pytest
import torch

import rnnkit

PAIRS = {
    "RNNCell": (torch.nn.RNNCell, rnnkit.RNNCell, {}),
    "RNNCell-relu": (torch.nn.RNNCell, rnnkit.RNNCell, {"nonlinearity": "relu"}),
    "LSTMCell": (torch.nn.LSTMCell, rnnkit.LSTMCell, {}),
    "GRUCell": (torch.nn.GRUCell, rnnkit.GRUCell, {}),
}


def make(name, bias, backend, dtype=torch.float64):
    ref_cls, our_cls, kw = PAIRS[name]
    ref = ref_cls(3, 5, bias=bias, dtype=dtype, **kw)
    ours = our_cls(3, 5, bias=bias, backend=backend, dtype=dtype, **kw)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ref, ours


def flat(x):
    return [x] if isinstance(x, torch.Tensor) else list(x)


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_h", [True, False])
@pytest.mark.parametrize("name", list(PAIRS))
def test_cell_matches_torch(name, with_h, batched, bias, backend):
    torch.manual_seed(0)
    ref, ours = make(name, bias, backend)
    shape = (4,) if batched else ()
    x = torch.randn(*shape, 3, dtype=torch.float64, requires_grad=True)
    hx = None
    if with_h:
        h = torch.randn(*shape, 5, dtype=torch.float64, requires_grad=True)
        hx = (h, torch.randn_like(h).requires_grad_()) if name == "LSTMCell" else h
    a, b = flat(ref(x, hx)), flat(ours(x, hx))
    w = [torch.randn_like(t) for t in a]
    wrt = [x, *(flat(hx) if hx is not None else []), *ref.parameters()]
    wrt_ours = [x, *(flat(hx) if hx is not None else []), *ours.parameters()]
    ga = torch.autograd.grad(sum((t * v).sum() for t, v in zip(a, w)), wrt)
    gb = torch.autograd.grad(sum((t * v).sum() for t, v in zip(b, w)), wrt_ours)
    for p, q in zip(a + list(ga), b + list(gb)):
        torch.testing.assert_close(q, p, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(PAIRS))
def test_cell_errors_match_torch(name):
    ref, ours = make(name, True, "reference", dtype=torch.float32)
    lstm = name == "LSTMCell"

    def st(*shape):
        return (torch.zeros(*shape), torch.zeros(*shape)) if lstm else torch.zeros(*shape)

    cases = [
        (torch.randn(2, 3, 1), None),
        (torch.randn(2, 7), None),
        (torch.randn(2, 3), st(3, 5)),
        (torch.randn(2, 3), st(2, 6)),
        (torch.randn(2, 3), st(1, 2, 5)),
        (torch.randn(2, 3, dtype=torch.float64), None),
    ]
    for x, hx in cases:
        with pytest.raises(Exception) as expected:
            ref(x, hx)
        with pytest.raises(expected.type):
            ours(x, hx)


def test_cells_step_a_layer():
    """Running a cell step by step equals the layer built from the same weights."""
    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(3, 5, backend="reference")
    layer = rnnkit.LSTM(3, 5, backend="native")
    with torch.no_grad():
        for a, b in (
            ("weight_ih", "weight_ih_l0"),
            ("weight_hh", "weight_hh_l0"),
            ("bias_ih", "bias_ih_l0"),
            ("bias_hh", "bias_hh_l0"),
        ):
            getattr(layer, b).copy_(getattr(cell, a))
    x = torch.randn(6, 2, 3)
    state = None
    outs = []
    for t in range(6):
        state = cell(x[t], state)
        outs.append(state[0])
    out, (h, c) = layer(x)
    torch.testing.assert_close(torch.stack(outs), out)
    torch.testing.assert_close(state[1], c[0])
