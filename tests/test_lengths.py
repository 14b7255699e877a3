"""lengths= beside a padded batch: zero outputs past each end, final state at each own last step."""

from __future__ import annotations

import pytest
import torch
from conftest import TOL, leaves, twins
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_lengths_equal_packing(kind, bidirectional, batch_first, backend):
    """lengths= in any order gives what torch.nn gives on the same batch packed, and grads too."""
    torch.manual_seed(0)
    ref, ours = twins(
        kind,
        3,
        5,
        num_layers=2,
        bidirectional=bidirectional,
        batch_first=batch_first,
        dtype=torch.float64,
        backend=backend,
    )
    x = (
        torch.randn(4, 7, 3, dtype=torch.float64)
        if batch_first
        else torch.randn(7, 4, 3, dtype=torch.float64)
    )
    x.requires_grad_()
    lengths = torch.tensor([3, 7, 1, 5])  # unsorted on purpose

    def via_packing(x):
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        out, h = ref(packed)
        return pad_packed_sequence(out, batch_first=batch_first, total_length=7)[0], h

    out_ref, h_ref = via_packing(x)
    out, h = ours(x, lengths=lengths)
    torch.testing.assert_close(out, out_ref, **TOL[torch.float64])
    for a, b in zip(leaves(h), leaves(h_ref)):
        torch.testing.assert_close(a, b, **TOL[torch.float64])
    w = [torch.randn_like(t) for t in [out, *leaves(h)]]
    g_ref = torch.autograd.grad(sum((t * v).sum() for t, v in zip([out_ref, *leaves(h_ref)], w)), x)
    g = torch.autograd.grad(sum((t * v).sum() for t, v in zip([out, *leaves(h)], w)), x)
    torch.testing.assert_close(g[0], g_ref[0], **TOL[torch.float64])


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_padding_never_changes_the_answer(kind):
    """A sequence gives the same output and state alone, or padded with garbage in a batch."""
    torch.manual_seed(1)
    _, ours = twins(kind, 3, 5, bidirectional=True, backend="reference")
    seq = torch.randn(4, 1, 3)
    alone_out, alone_h = ours(seq)
    padded = torch.cat([seq, 1e3 * torch.randn(6, 1, 3)])  # garbage past the end
    batch = torch.cat([padded, torch.randn(10, 2, 3)], dim=1)
    out, h = ours(batch, lengths=torch.tensor([4, 10, 2]))
    torch.testing.assert_close(out[:4, :1], alone_out)
    assert out[4:, 0].abs().max() == 0
    for a, b in zip(leaves(h), leaves(alone_h)):
        torch.testing.assert_close(a[:, :1], b)


def test_lengths_on_any_device_and_as_list():
    _, ours = twins("GRU", 3, 5, backend="reference")
    x = torch.randn(6, 2, 3)
    a = ours(x, lengths=torch.tensor([6, 2], dtype=torch.int32))
    b = ours(x, lengths=[6, 2])
    torch.testing.assert_close(a[0], b[0])


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_full_lengths_equal_no_lengths(kind):
    ref, ours = twins(kind, 3, 5, num_layers=2, bidirectional=True)
    x = torch.randn(6, 2, 3)
    for t, u in zip(leaves(ours(x, lengths=torch.tensor([6, 6]))), leaves(ref(x))):
        torch.testing.assert_close(t, u)
