"""Fast paths against their readable references: the linear scan, the fused layer-norm engines."""

from __future__ import annotations

import pytest
import torch

from rnnkit.cells.linear_scan import linear_scan, scan_into, scan_reverse_into


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
