"""The hidden state as a value: streaming in chunks, detaching, and per-step states."""

from __future__ import annotations

import pytest
import torch
from conftest import leaves, twins

import rnnkit


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_chunks_with_carried_state_equal_one_call(kind, backend):
    torch.manual_seed(0)
    _, rnn = twins(kind, 3, 5, num_layers=2, batch_first=True, backend=backend)
    x = torch.randn(2, 12, 3)
    whole_out, whole_state = rnn(x)
    state, outs = None, []
    for chunk in x.split([5, 1, 6], dim=1):
        out, state = rnn(chunk, state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), whole_out)
    for a, b in zip(leaves(state), leaves(whole_state)):
        torch.testing.assert_close(a, b)


def test_detach_state_cuts_the_graph_and_keeps_values():
    lstm = rnnkit.LSTM(3, 5)
    _, state = lstm(torch.randn(4, 2, 3))
    assert all(t.requires_grad for t in state)
    cut = rnnkit.detach_state(state)
    assert isinstance(cut, tuple) and not any(t.requires_grad for t in cut)
    for a, b in zip(cut, state):
        assert torch.equal(a, b)
    h = rnnkit.detach_state(state[0])
    assert isinstance(h, torch.Tensor) and not h.requires_grad


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_return_states_gives_every_layer_and_direction(kind):
    torch.manual_seed(0)
    ref, rnn = twins(kind, 3, 5, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(2, 6, 3)
    out, final, states = rnn(x, return_states=True)  # auto picks the reference path
    h = states.h  # (L*D, T, B, H)
    assert h.shape == (4, 6, 2, 5)
    # the last layer's per-step h is the output; step T-1 (forward) and 0 (reverse) the final h
    torch.testing.assert_close(torch.cat([h[2], h[3]], -1).transpose(0, 1), out)
    h_n = final[0] if kind == "LSTM" else final
    torch.testing.assert_close(h[[0, 2], -1], h_n[[0, 2]])
    torch.testing.assert_close(h[[1, 3], 0], h_n[[1, 3]])
    if kind == "LSTM":
        assert states.c.shape == (4, 6, 2, 5)
        torch.testing.assert_close(states.c[[0, 2], -1], final[1][[0, 2]])
    else:
        with pytest.raises(AttributeError):
            states.c
    torch.testing.assert_close(out, ref(x)[0])


def test_gradients_with_respect_to_each_step_state():
    """dL/dh_t by autograd on the returned step states equals a finite difference."""
    torch.manual_seed(0)
    rnn = rnnkit.RNN(2, 3, dtype=torch.float64)
    x = torch.randn(6, 1, 2, dtype=torch.float64)
    out, _, states = rnn(x, return_states=True)
    steps = states.at(0)
    loss = out[-1].sum()
    grads = torch.autograd.grad(loss, steps)
    assert len(grads) == 6
    torch.testing.assert_close(grads[-1], torch.ones_like(grads[-1]))
    # finite difference on h_2: perturb h_2 and run the rest of the sequence from it
    eps = 1e-6
    for j in range(3):
        h2 = steps[2].detach().clone()
        h2[0, j] += eps
        plus = rnn(x[3:], h2.unsqueeze(0))[0][-1].sum()
        h2[0, j] -= 2 * eps
        minus = rnn(x[3:], h2.unsqueeze(0))[0][-1].sum()
        assert abs((plus - minus).item() / (2 * eps) - grads[2][0, j].item()) < 1e-6
    # gradients decay along the chain of a fresh tanh RNN: a visible vanishing gradient
    norms = [g.norm().item() for g in grads]
    assert norms[0] < norms[-1]


def test_unbatched_return_states():
    rnn = rnnkit.GRU(3, 4, num_layers=2)
    out, h, states = rnn(torch.randn(5, 3), return_states=True)
    assert out.shape == (5, 4) and h.shape == (2, 4)
    assert states.h.shape == (2, 5, 4)


def test_initial_state_shapes():
    lstm = rnnkit.LSTM(3, 8, num_layers=2, bidirectional=True, proj_size=4)
    h, c = lstm.initial_state(5)
    assert h.shape == (4, 5, 4) and c.shape == (4, 5, 8)
    out, (h2, c2) = lstm(torch.randn(7, 5, 3), (h, c))
    assert h2.shape == h.shape and c2.shape == c.shape
