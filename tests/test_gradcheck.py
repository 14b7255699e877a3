"""torch.autograd.gradcheck on the reference path, in float64 at tiny sizes."""

from __future__ import annotations

import pytest
import torch

import rnnkit


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.RNN(
            2, 3, num_layers=2, bidirectional=True, backend="reference", dtype=torch.float64
        ),
        lambda: rnnkit.RNN(2, 3, nonlinearity="relu", backend="reference", dtype=torch.float64),
        lambda: rnnkit.LSTM(
            2, 3, num_layers=2, bidirectional=True, backend="reference", dtype=torch.float64
        ),
        lambda: rnnkit.LSTM(2, 3, proj_size=2, backend="reference", dtype=torch.float64),
        lambda: rnnkit.GRU(
            2, 3, num_layers=2, bidirectional=True, backend="reference", dtype=torch.float64
        ),
        lambda: rnnkit.Recurrent(rnnkit.LayerNormLSTMCell, 2, 3, dtype=torch.float64),
    ],
    ids=["rnn-tanh", "rnn-relu", "lstm", "lstm-proj", "gru", "layer-norm-lstm"],
)
def test_gradcheck_reference(make):
    torch.manual_seed(0)
    rnn = make()
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    params = list(rnn.parameters())

    def fn(x, *ps):
        # functional_call makes the parameters inputs of the graph, so gradcheck sees them
        named = dict(zip([n for n, _ in rnn.named_parameters()], ps))
        out, state = torch.func.functional_call(rnn, named, (x,), {"lengths": lengths})
        h = state[0] if isinstance(state, tuple) else state
        return out, h

    inputs = (x, *[p.detach().clone().requires_grad_() for p in params])
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)
