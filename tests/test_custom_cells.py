"""rnnkit.Recurrent: a custom cell gets layers, directions, lengths and packing for free."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit


def hand_loop(cells, x, num_layers, bidirectional):
    """The plainest possible stacked, bidirectional loop over LayerNormLSTMCell: (T, B, I)."""
    D = 2 if bidirectional else 1
    T, B = x.shape[:2]
    layer_in, finals = x, []
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            cell = cells[layer * D + d]
            state = cell.initial_state(B, dtype=x.dtype)
            ys = [None] * T
            for t in range(T) if d == 0 else reversed(range(T)):
                ys[t], state = cell(layer_in[t], state)
            outs.append(torch.stack(ys))
            finals.append(state)
        layer_in = torch.cat(outs, -1)
    h = torch.stack([s[0] for s in finals])
    c = torch.stack([s[1] for s in finals])
    return layer_in, (h, c)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_layer_norm_lstm_matches_hand_loop(num_layers, bidirectional):
    torch.manual_seed(0)
    rnn = rnnkit.Recurrent(
        rnnkit.LayerNormLSTMCell,
        4,
        6,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dtype=torch.float64,
    )
    x = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)
    out, (h, c) = rnn(x)
    ref_out, (ref_h, ref_c) = hand_loop(rnn.cells, x, num_layers, bidirectional)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h, ref_h)
    torch.testing.assert_close(c, ref_c)
    g = torch.autograd.grad(out.square().sum() + c.sum(), [x, *rnn.parameters()])
    g_ref = torch.autograd.grad(ref_out.square().sum() + ref_c.sum(), [x, *rnn.parameters()])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b)


def test_custom_cell_gets_batch_first_lengths_packing_and_unbatched():
    torch.manual_seed(0)
    rnn = rnnkit.Recurrent(
        rnnkit.LayerNormLSTMCell, 4, 6, num_layers=2, bidirectional=True, dtype=torch.float64
    )
    rnn_bf = rnnkit.Recurrent(
        rnnkit.LayerNormLSTMCell,
        4,
        6,
        num_layers=2,
        bidirectional=True,
        batch_first=True,
        dtype=torch.float64,
    )
    rnn_bf.load_state_dict(rnn.state_dict())
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    lengths = torch.tensor([2, 7, 4])
    out, (h, c) = rnn(x, lengths=lengths)
    # batch_first gives the same
    out_bf, (h_bf, _) = rnn_bf(x.transpose(0, 1), lengths=lengths)
    torch.testing.assert_close(out_bf.transpose(0, 1), out)
    torch.testing.assert_close(h_bf, h)
    # each sequence alone, unbatched, gives the same
    for b in range(3):
        alone, (h_alone, _) = rnn(x[: lengths[b], b])
        torch.testing.assert_close(alone, out[: lengths[b], b])
        torch.testing.assert_close(h_alone, h[:, b])
        assert not out[lengths[b] :, b].any()
    # a PackedSequence gives the same, packed the same way
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    p_out, (p_h, p_c) = rnn(packed)
    assert torch.equal(p_out.sorted_indices, packed.sorted_indices)
    torch.testing.assert_close(pad_packed_sequence(p_out, total_length=7)[0], out)
    torch.testing.assert_close(p_h, h)
    torch.testing.assert_close(p_c, c)


def test_recurrent_over_standard_cells_equals_the_layer():
    """The standard cells stacked by Recurrent give the standard layer's numbers: one unroller."""
    torch.manual_seed(0)
    stacked = rnnkit.Recurrent(rnnkit.GRUCell, 3, 5, num_layers=2, bidirectional=True)
    layer = rnnkit.GRU(3, 5, num_layers=2, bidirectional=True)
    with torch.no_grad():
        for k, cell in enumerate(stacked.cells):
            s = f"_l{k // 2}{'_reverse' if k % 2 else ''}"
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layer, name + s).copy_(getattr(cell, name))
    x = torch.randn(6, 2, 3)
    h0 = torch.randn(4, 2, 5)
    a, b = stacked(x, h0), layer(x, h0)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


def test_a_minimal_user_cell_needs_nothing_but_forward():
    class Leaky(torch.nn.Module):
        """h' = (1 - a) h + a tanh(W x + U h): a leaky-integrator cell, state a plain tensor."""

        def __init__(self, input_size, hidden_size, leak=0.5):
            super().__init__()
            self.w = torch.nn.Linear(input_size, hidden_size)
            self.u = torch.nn.Linear(hidden_size, hidden_size, bias=False)
            self.leak = leak

        def forward(self, x, h):
            h = (1 - self.leak) * h + self.leak * torch.tanh(self.w(x) + self.u(h))
            return h, h

    rnn = rnnkit.Recurrent(Leaky, 3, 4, num_layers=2, batch_first=True, leak=0.3)
    assert rnn.cells[0].leak == 0.3
    out, h = rnn(torch.randn(2, 5, 3))
    assert out.shape == (2, 5, 4) and h.shape == (2, 2, 4)
    out, h, states = rnn(torch.randn(2, 5, 3), return_states=True)
    assert states.h.shape == (2, 5, 2, 4)
    torch.testing.assert_close(states.h[-1].transpose(0, 1), out)


def test_recurrent_errors():
    rnn = rnnkit.Recurrent(rnnkit.LayerNormLSTMCell, 4, 6)
    with pytest.raises(RuntimeError, match="Expected 4, got 5"):
        rnn(torch.randn(3, 2, 5))
    with pytest.raises(ValueError, match="2D or 3D"):
        rnn(torch.randn(3))
    with pytest.raises(ValueError, match="dtype"):
        rnn(torch.randn(3, 2, 4, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(1, 2, 6\)"):
        rnn(torch.randn(3, 2, 4), (torch.zeros(1, 2, 6), torch.zeros(1, 2, 7)))
    with pytest.raises(TypeError, match="state structure"):
        rnn(torch.randn(3, 2, 4), torch.zeros(1, 2, 6))
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        rnnkit.Recurrent(rnnkit.LayerNormLSTMCell, 4, 0)
    with pytest.raises(ValueError, match="num_layers"):
        rnnkit.Recurrent(rnnkit.LayerNormLSTMCell, 4, 6, num_layers=0)
