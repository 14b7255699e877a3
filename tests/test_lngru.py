"""The layer-normalised GRU cell (``lngru``): its equation written out by hand, gradcheck, the
layer shapes through the registry, and the command line end to end."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from test_cell_registry import _lm_args, _losses, _text

import rnnkit
from rnnkit.cli.main import main
from rnnkit.layers import make_layer


def reference_step(cell: rnnkit.LayerNormGRUCell, x, h):
    """The docstring's equation, gate by gate, from the cell's parameters."""
    H = cell.hidden_size
    a = F.layer_norm(x @ cell.weight_ih.T, (3 * H,), cell.ln_ih.weight, None, cell.ln_ih.eps)
    u = F.layer_norm(h @ cell.weight_hh.T, (3 * H,), cell.ln_hh.weight, None, cell.ln_hh.eps)
    a, u = a + cell.bias_ih, u + cell.bias_hh
    a_r, a_z, a_n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
    u_r, u_z, u_n = u[:, :H], u[:, H : 2 * H], u[:, 2 * H :]
    r = torch.sigmoid(a_r + u_r)
    z = torch.sigmoid(a_z + u_z)
    n = torch.tanh(a_n + r * u_n)
    return (1 - z) * n + z * h


def test_the_cell_computes_its_equation():
    torch.manual_seed(0)
    cell = rnnkit.LayerNormGRUCell(5, 7).double()
    with torch.no_grad():  # non-trivial gains and biases, so that every term counts
        for p in (cell.bias_ih, cell.bias_hh, cell.ln_ih.weight, cell.ln_hh.weight):
            p.add_(torch.randn_like(p) * 0.5)
    x = torch.randn(4, 5, dtype=torch.float64)
    h = torch.randn(4, 7, dtype=torch.float64)
    y, h_next = cell(x, h)
    expected = reference_step(cell, x, h)
    torch.testing.assert_close(h_next, expected, rtol=1e-12, atol=1e-12)
    assert y is h_next
    assert torch.equal(cell.initial_state(3), torch.zeros(3, 7))


def test_unrolled_over_time_it_is_the_step_repeated():
    torch.manual_seed(1)
    rnn = rnnkit.Recurrent(rnnkit.LayerNormGRUCell, 3, 4, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, h_n = rnn(x)
    h = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(6):
        h = reference_step(rnn.cells[0], x[t], h)
        torch.testing.assert_close(out[t], h)
    torch.testing.assert_close(h_n[0], h)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck(bidirectional):
    torch.manual_seed(0)
    rnn = rnnkit.Recurrent(
        rnnkit.LayerNormGRUCell, 2, 3, num_layers=2, bidirectional=bidirectional,
        dtype=torch.float64,
    )  # fmt: skip
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    names = [n for n, _ in rnn.named_parameters()]

    def fn(x, *ps):
        # functional_call makes the parameters inputs of the graph, so gradcheck sees them
        return torch.func.functional_call(rnn, dict(zip(names, ps)), (x,), {"lengths": lengths})

    inputs = (x, *[p.detach().clone().requires_grad_() for p in rnn.parameters()])
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_registered_layer_has_torch_shapes(batch_first, bidirectional):
    torch.manual_seed(0)
    layer = make_layer(
        "lngru", 3, 5, num_layers=2, bidirectional=bidirectional, batch_first=batch_first
    )
    assert type(layer) is rnnkit.Recurrent
    assert all(isinstance(c, rnnkit.LayerNormGRUCell) for c in layer.cells)
    D = 2 if bidirectional else 1
    B, T = 3, 6
    x = torch.randn(B, T, 3) if batch_first else torch.randn(T, B, 3)
    lengths = torch.tensor([6, 4, 1])
    out, h_n = layer(x, lengths=lengths)
    assert out.shape == ((B, T, D * 5) if batch_first else (T, B, D * 5))
    assert h_n.shape == (2 * D, B, 5)
    # past its length a sequence's outputs are zero, and its final state is the one at its end
    out_bt = out if batch_first else out.transpose(0, 1)
    assert torch.all(out_bt[1, 4:] == 0) and torch.all(out_bt[2, 1:] == 0)
    x_bt = x if batch_first else x.transpose(0, 1)
    alone, h_alone = layer(x_bt[1:2, :4] if batch_first else x_bt[1:2, :4].transpose(0, 1))
    alone_bt = alone if batch_first else alone.transpose(0, 1)
    torch.testing.assert_close(out_bt[1:2, :4], alone_bt)
    torch.testing.assert_close(h_n[:, 1:2], h_alone)


def test_the_command_line_trains_samples_and_evaluates(tmp_path, capsys):
    data, run = _text(tmp_path), tmp_path / "lm"
    assert main(_lm_args(data, run, "lngru", 30)) == 0
    assert json.loads((run / "config.json").read_text())["task"]["model"]["cell"] == "lngru"
    losses = _losses(run)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.3  # it learns
    capsys.readouterr()
    args = ["sample", str(run), "--prime", "the ", "--length", "40", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first and len(first) >= 44
    assert main(["evaluate", str(run), "--split", "val", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["loss"] < metrics["unigram_loss"]
