"""minGRU and minLSTM: the parallel scan against the step loop, through the layer and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import use

from rnnkit.cells.min_rnn import MinGRUCell, MinLSTMCell
from rnnkit.cli.main import main
from rnnkit.layers import make_layer

CELLS = [MinGRUCell, MinLSTMCell]


def step_loop(cell, x, h):
    """The reference: one ``forward`` call per step."""
    ys = []
    for t in range(x.size(0)):
        y, h = cell(x[t], h)
        ys.append(y)
    return torch.stack(ys), h


@pytest.mark.parametrize("engine", ["kernel", "fallback"])
@pytest.mark.parametrize("cls", CELLS)
def test_scan_equals_the_step_loop_forward_and_backward(cls, engine, built, monkeypatch):
    # the gate maths in C++ (kernels/min_rnn.cpp) or in PyTorch ops: the step loop's numbers
    spy = use(monkeypatch, engine, built)
    torch.manual_seed(0)
    cell = cls(5, 7).double()
    x = (3 * torch.randn(50, 4, 5, dtype=torch.float64)).requires_grad_()
    h0 = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)  # any sign is allowed
    w = torch.randn(50, 4, 7, dtype=torch.float64)
    results = []
    for run in (cell.scan, lambda x, h: step_loop(cell, x, h)):
        ys, h_T = run(x, h0)
        loss = (w * ys).sum() + (w[0] * h_T).sum()
        grads = torch.autograd.grad(loss, [x, h0, *cell.parameters()])
        results.append((ys, h_T, grads))
    if spy is not None:
        assert spy.calls == ["min_rnn_forward", "min_rnn_backward"]
    (ys, h_T, grads), (ys_ref, h_ref, grads_ref) = results
    torch.testing.assert_close(ys, ys_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_T, h_ref, rtol=1e-10, atol=1e-12)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("engine", ["kernel", "fallback"])
@pytest.mark.parametrize("cls", CELLS)
def test_scan_gradcheck(cls, engine, built, monkeypatch):
    use(monkeypatch, engine, built)
    torch.manual_seed(1)
    cell = cls(3, 2).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: cell.scan(x, h), (x, h0))


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_the_layer_scans_and_agrees_with_its_step_path(name, monkeypatch):
    torch.manual_seed(2)
    layer = make_layer(name, 4, 6, num_layers=2, bidirectional=True).double()
    x = torch.randn(3, 9, 4, dtype=torch.float64)  # (B, T, I)
    h0 = torch.randn(4, 3, 6, dtype=torch.float64)
    calls = []
    cls = type(layer.cells[0])
    real = cls.scan
    monkeypatch.setattr(cls, "scan", lambda self, *a: calls.append(1) or real(self, *a))
    out, h_n = layer(x, h0)  # the scan path
    assert len(calls) == 4  # 2 layers x 2 directions took the scan
    out_ref, h_ref, _ = layer(x, h0, return_states=True)  # per-step states take the loop
    layer(x[:, :1], h0)  # one step (a generated token) takes the cheap step
    assert len(calls) == 4
    assert out.shape == (3, 9, 12) and h_n.shape == (4, 3, 6)
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_n, h_ref, rtol=1e-10, atol=1e-12)
    # with lengths (the step path, masked), each sequence is its own unpadded scan
    lengths = torch.tensor([9, 4, 1])
    out_len, h_len = layer(x, h0, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        one, h_one = layer(x[b : b + 1, :n], h0[:, b : b + 1])
        torch.testing.assert_close(out_len[b, :n], one[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(h_len[:, b], h_one[:, 0], rtol=1e-10, atol=1e-12)
        assert (out_len[b, n:] == 0).all()


@pytest.mark.parametrize("cls", CELLS)
def test_float32_scan_is_stable_at_4096_steps(cls):
    torch.manual_seed(3)
    cell = cls(4, 8)
    x = 3 * torch.randn(4096, 2, 4)  # large pre-activations: gates near 0 and 1
    ys, h_T = cell.scan(x, torch.zeros(2, 8))
    assert torch.isfinite(ys).all()
    with torch.no_grad():
        ref, h_ref = step_loop(cell.double(), x.double(), torch.zeros(2, 8, dtype=torch.float64))
    torch.testing.assert_close(ys.double(), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h_T.double(), h_ref, rtol=1e-4, atol=1e-4)


def test_mingru_trains_a_language_model_and_samples(tmp_path, capsys):
    words = ["the", "cat", "sat", "on", "the", "mat", "while", "the",
             "dog", "ran", "to", "the", "door", "and", "back", "again"]  # fmt: skip
    g = torch.Generator().manual_seed(0)
    picks = torch.randint(0, len(words), (3000,), generator=g).tolist()
    data, run = tmp_path / "text.txt", tmp_path / "lm"
    data.write_text(" ".join(words[i] for i in picks))
    args = [
        "train", "lm", "--data", str(data), "--out", str(run), "--cell", "mingru",
        "--hidden-size", "24", "--num-layers", "2", "--embedding-size", "8",
        "--bptt", "16", "--batch-size", "8", "--max-steps", "30", "--lr", "1e-2",
        "--warmup-steps", "5", "--eval-every", "10", "--eval-max-tokens", "2000",
        "--checkpoint-every", "10", "--log-every", "1", "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    losses = [r["loss"] for r in records if "loss" in r]
    assert sum(losses[-5:]) / 5 < losses[0] - 0.3  # it learns
    capsys.readouterr()
    assert main(["sample", str(run), "--prime", "the ", "--length", "40", "--seed", "3"]) == 0
    assert len(capsys.readouterr().out) >= 44
    assert json.loads(Path(run / "config.json").read_text())["task"]["model"]["cell"] == "mingru"


@pytest.mark.parametrize("cls", CELLS)
def test_kernel_gates_equal_the_pytorch_gates_in_float32(cls, built, monkeypatch):
    # extreme pre-activations: the minLSTM gate's quotient without logarithms, the candidate's
    # two branches, and zero exactly (g' there is the sigmoid's slope, as autograd has it)
    torch.manual_seed(5)
    cell = cls(6, 8)
    x = torch.randn(40, 3, 6) * 30
    x[5] = 0.0
    h0 = torch.randn(3, 8)
    w = torch.randn(40, 3, 8)
    results = []
    for engine in ("kernel", "fallback"):
        use(monkeypatch, engine, built)
        xi = x.clone().requires_grad_()
        ys, h_T = cell.scan(xi, h0)
        grads = torch.autograd.grad((w * ys).sum(), [xi, *cell.parameters()])
        results.append((ys, grads))
    (ys, grads), (ys_ref, grads_ref) = results
    assert torch.isfinite(ys).all()
    torch.testing.assert_close(ys, ys_ref, rtol=1e-5, atol=1e-5)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cls", CELLS)
def test_kernel_keeps_a_nan_and_takes_a_broadcast_h0(cls, built, monkeypatch):
    use(monkeypatch, "kernel", built)
    torch.manual_seed(7)
    cell = cls(4, 5)
    x = torch.randn(6, 2, 4)
    x[3, 1, 0] = float("nan")
    ys, _ = cell.scan(x, cell.initial_state(2))
    use(monkeypatch, "fallback")
    ys_ref, _ = cell.scan(x, cell.initial_state(2))
    assert torch.equal(ys.isnan(), ys_ref.isnan()) and ys.isnan().any()
    use(monkeypatch, "kernel", built)  # an h0 of one row for every sequence: forward, backward
    xg = torch.randn(6, 2, 4, requires_grad=True)
    h0 = torch.randn(1, 5, requires_grad=True)
    ys, _ = cell.scan(xg, h0)
    ys.sum().backward()
    assert h0.grad.shape == (1, 5)
