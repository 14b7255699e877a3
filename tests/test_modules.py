"""Module behaviour a drop-in must share: state_dict both ways, dropout, copies, dtype, repr."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from conftest import OURS, TORCH, twins

import rnnkit


@pytest.mark.parametrize("kind,kw", [("RNN", {}), ("LSTM", {"proj_size": 2}), ("GRU", {})])
def test_state_dict_loads_both_ways_strictly(kind, kw):
    ref = TORCH[kind](3, 5, num_layers=2, bidirectional=True, **kw)
    ours = OURS[kind](3, 5, num_layers=2, bidirectional=True, **kw)
    assert list(ref.state_dict()) == list(ours.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref2 = TORCH[kind](3, 5, num_layers=2, bidirectional=True, **kw)
    ref2.load_state_dict(ours.state_dict(), strict=True)
    for a, b in zip(ref.parameters(), ref2.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_initialisation_matches_torch(kind):
    """Same seed, same parameters: torch's uniform(-1/sqrt(H), 1/sqrt(H)) in torch's order."""
    torch.manual_seed(3)
    ref = TORCH[kind](4, 6, num_layers=2)
    torch.manual_seed(3)
    ours = OURS[kind](4, 6, num_layers=2)
    for a, b in zip(ref.parameters(), ours.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_dropout_semantics(kind, backend):
    """Dropout acts between layers in training only, never on the last layer's output."""
    torch.manual_seed(0)
    ref, ours = twins(kind, 3, 16, num_layers=3, dropout=0.5, backend=backend)
    x = torch.randn(5, 4, 3)
    ours.eval()
    ref.eval()
    torch.testing.assert_close(ours(x)[0], ref(x)[0])  # eval: no dropout, same numbers
    ours.train()
    a, b = ours(x)[0], ours(x)[0]
    assert not torch.allclose(a, b)  # train: random masks differ between calls
    assert not torch.allclose(a, ref.eval()(x)[0])
    one = OURS[kind](3, 16, num_layers=1, backend=backend)
    one.dropout = 0.5  # torch warns about dropout with one layer; it has no effect
    one.train()
    torch.testing.assert_close(one(x)[0], one(x)[0])


def test_pickle_deepcopy_and_repr():
    lstm = rnnkit.LSTM(3, 5, num_layers=2, backend="reference")
    x = torch.randn(4, 2, 3)
    for clone in (copy.deepcopy(lstm), pickle.loads(pickle.dumps(lstm))):
        assert clone.backend == "reference"
        torch.testing.assert_close(clone(x)[0], lstm(x)[0])
    assert repr(lstm) == "LSTM(3, 5, num_layers=2)"
    assert isinstance(lstm, torch.nn.LSTM)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_dtype_and_device_arguments(backend):
    gru = rnnkit.GRU(3, 4, dtype=torch.float64, device="cpu", backend=backend)
    assert all(p.dtype == torch.float64 for p in gru.parameters())
    out, h = gru(torch.randn(2, 1, 3, dtype=torch.float64))
    assert out.dtype == torch.float64
    gru.float()
    assert gru(torch.randn(2, 1, 3))[0].dtype == torch.float32
