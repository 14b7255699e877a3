"""Fast paths against their readable references: the linear scan, the fused layer-norm engines."""

from __future__ import annotations

import pytest
import torch
from conftest import step_loop

from rnnkit import Recurrent
from rnnkit.cells.layer_norm_gru import LayerNormGRUCell
from rnnkit.cells.layer_norm_lstm import LayerNormLSTMCell
from rnnkit.cells.linear_scan import linear_scan, scan_into, scan_reverse_into
from rnnkit.state import leaves


def loop_scan(a, b, h0):
    """The reference: ``h_t = a_t h_{t-1} + b_t`` one step at a time."""
    hs, h = [], h0
    for a_t, b_t in zip(a.unbind(0), b.unbind(0)):
        h = a_t * h + b_t
        hs.append(h)
    return torch.stack(hs)


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 33, 100])
def test_scan_primitives_equal_the_loop_at_every_length(T):
    torch.manual_seed(T)
    a, b = torch.rand(T, 3, 2, dtype=torch.float64), torch.randn(T, 3, 2, dtype=torch.float64)
    out = torch.full_like(b, float("nan"))
    scan_into(a[1:], b, out)
    torch.testing.assert_close(out, loop_scan(a, b, torch.zeros(3, 2, dtype=torch.float64)))
    inplace = b.clone()
    scan_into(a[1:], inplace, inplace)  # out may be b itself
    torch.testing.assert_close(inplace, out, rtol=0, atol=0)
    rev = torch.full_like(b, float("nan"))
    scan_reverse_into(a[1:], b, rev)  # o_t = a_{t+1} o_{t+1} + b_t
    ref = loop_scan(torch.cat([a[1:], a[:1]]).flip(0), b.flip(0), torch.zeros(3, 2).double())
    torch.testing.assert_close(rev, ref.flip(0))


def test_linear_scan_gradcheck_and_matches_loop_gradients():
    torch.manual_seed(0)
    a = torch.rand(6, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(linear_scan, (a, b, h0))
    w = torch.randn(6, 2, 3, dtype=torch.float64)
    fast = torch.autograd.grad((w * linear_scan(a, b, h0)).sum(), (a, b, h0))
    slow = torch.autograd.grad((w * loop_scan(a, b, h0)).sum(), (a, b, h0))
    for f, s in zip(fast, slow):
        torch.testing.assert_close(f, s, rtol=1e-12, atol=1e-12)


def test_linear_scan_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="linear_scan needs"):
        linear_scan(torch.rand(4, 2, 3), torch.rand(4, 2, 2), torch.zeros(2, 3))


def random_state(cell, B, dtype):
    zero = cell.initial_state(B, dtype=dtype)
    return (
        tuple(torch.randn_like(s) for s in zero)
        if isinstance(zero, tuple)
        else torch.randn_like(zero)
    )


def perturb(cell):
    """Move every parameter off its initial value (gains of 1, shifts of 0 hide mistakes)."""
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))


LN_CELLS = [LayerNormLSTMCell, LayerNormGRUCell]


@pytest.mark.parametrize("cls", LN_CELLS)
def test_fused_engine_equals_the_step_loop_forward_and_backward(cls):
    torch.manual_seed(0)
    cell = cls(5, 6).double()
    perturb(cell)
    x = torch.randn(9, 4, 5, dtype=torch.float64, requires_grad=True)
    state = random_state(cell, 4, torch.float64)
    for s in leaves(state):
        s.requires_grad_()
    w = torch.randn(9, 4, 6, dtype=torch.float64)
    results = []
    for run in (cell.sequence, lambda x, s: step_loop(cell, x, s)):
        ys, final = run(x, state)
        loss = (w * ys).sum() + sum((w[0] * f).sum() for f in leaves(final))
        grads = torch.autograd.grad(loss, [x, *leaves(state), *cell.parameters()])
        results.append((ys, leaves(final), grads))
    (ys, fin, grads), (ys_ref, fin_ref, grads_ref) = results
    torch.testing.assert_close(ys, ys_ref, rtol=1e-10, atol=1e-12)
    for f, f_ref in zip(fin, fin_ref):
        torch.testing.assert_close(f, f_ref, rtol=1e-10, atol=1e-12)
    for (name, _), g, g_ref in zip(
        [("x", 0)] * (1 + len(leaves(state))) + list(cell.named_parameters()), grads, grads_ref
    ):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("cls", LN_CELLS)
def test_fused_engine_gradcheck(cls):
    torch.manual_seed(1)
    cell = cls(3, 2).double()
    perturb(cell)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    state = random_state(cell, 2, torch.float64)
    for s in leaves(state):
        s.requires_grad_()
    params = list(cell.parameters())

    def run(x, *tensors):
        n = len(leaves(state))
        s = tensors[:n] if isinstance(state, tuple) else tensors[0]
        with torch.nn.utils.stateless._reparametrize_module(
            cell, dict(zip([k for k, _ in cell.named_parameters()], tensors[n:]))
        ):
            ys, final = cell.sequence(x, s)
        return ys, *leaves(final)

    assert torch.autograd.gradcheck(run, (x, *leaves(state), *params))


@pytest.mark.parametrize("cls", LN_CELLS)
def test_fused_engine_forward_only_matches_and_keeps_no_graph(cls):
    torch.manual_seed(2)
    cell = cls(4, 5)
    perturb(cell)
    x = torch.randn(7, 3, 4)
    state = cell.initial_state(3)
    with torch.no_grad():
        ys, final = cell.sequence(x, state)
        ys_ref, final_ref = step_loop(cell, x, state)
    assert ys.grad_fn is None
    torch.testing.assert_close(ys, ys_ref, rtol=1e-5, atol=1e-6)
    for f, f_ref in zip(leaves(final), leaves(final_ref)):
        torch.testing.assert_close(f, f_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", LN_CELLS)
def test_recurrent_uses_the_engine_and_falls_back_for_lengths_and_states(cls, monkeypatch):
    torch.manual_seed(3)
    layer = Recurrent(cls, 4, 5, num_layers=2, bidirectional=True).double()
    x = torch.randn(3, 6, 4, dtype=torch.float64)  # (T, B, I)
    calls = []
    real = cls.sequence
    monkeypatch.setattr(cls, "sequence", lambda self, *a: calls.append(1) or real(self, *a))
    out, h_n = layer(x)
    assert len(calls) == 4  # 2 layers x 2 directions
    out_ref, h_ref, _ = layer(x, return_states=True)  # per-step states: the reference loop
    assert len(calls) == 4
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(leaves(h_n), leaves(h_ref)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    layer(x, lengths=torch.tensor([3, 2, 1, 3, 3, 2]))  # lengths: the masked reference loop
    assert len(calls) == 4
