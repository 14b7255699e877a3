"""The cell registry: a cell is one file and one registry line, and every task can pick it.

The end-to-end tests write a cell class into a temporary ``.py`` file (outside the package) and
use it through the command line only: ``train lm`` -> ``sample`` -> ``evaluate`` ->
``--resume``, and ``train classify``; then the same for the registered ``lnlstm``.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.architectures import ManyToMany
from rnnkit.cells.registry import (
    CellError,
    canonical_cell,
    cell_names,
    cells_help,
    get_cell,
    register_cell,
)
from rnnkit.cli.main import main
from rnnkit.layers import make_layer

# A user's cell, as the Recurrent docs describe the protocol: (x_t, state) -> (y_t, state).
USER_CELL = '''
import torch
from torch import nn


class CoupledGateCell(nn.Module):
    """h_t = (1 - u) * h + u * tanh(W x + V (r * h)), with u, r from one fused matmul."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.x_proj = nn.Linear(input_size, 3 * hidden_size)
        self.h_proj = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        self.c_proj = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x, h):
        xu, xr, xc = self.x_proj(x).chunk(3, -1)
        hu, hr = self.h_proj(h).chunk(2, -1)
        u = torch.sigmoid(xu + hu)
        r = torch.sigmoid(xr + hr)
        c = torch.tanh(xc + self.c_proj(r * h))
        h = (1 - u) * h + u * c
        return h, h
'''


def write_cell(folder: Path) -> Path:
    path = folder / "my_cells.py"
    path.write_text(textwrap.dedent(USER_CELL))
    return path


def test_the_registry_lists_the_cells_and_builds_their_layers():
    assert {"lstm", "gru", "rnn", "rnn_relu", "lnlstm"} <= set(cell_names())
    assert "MODULE:CLASS" in cells_help() and "lnlstm" in cells_help()
    assert type(make_layer("lstm", 3, 4)) is rnnkit.LSTM  # torch's fused path kept
    assert type(make_layer("gru", 3, 4)) is rnnkit.GRU
    relu = make_layer("rnn_relu", 3, 4)
    assert type(relu) is rnnkit.RNN and relu.nonlinearity == "relu"
    ln = make_layer("lnlstm", 3, 4, num_layers=2)
    assert type(ln) is rnnkit.Recurrent
    assert all(isinstance(c, rnnkit.LayerNormLSTMCell) for c in ln.cells)


def test_one_call_registers_a_cell_for_every_architecture():
    class Tiny(torch.nn.Module):
        def __init__(self, input_size, hidden_size, scale=1.0):
            super().__init__()
            self.lin = torch.nn.Linear(input_size + hidden_size, hidden_size)
            self.scale = scale

        def forward(self, x, h):
            h = torch.tanh(self.lin(torch.cat([x, h], -1))) * self.scale
            return h, h

    register_cell("tiny_test_cell", Tiny, summary="a test cell", scale=0.5)
    try:
        assert "tiny_test_cell" in cell_names()
        model = ManyToMany(5, vocab_size=7, embedding_size=4, cell="tiny_test_cell", hidden_size=6)
        assert isinstance(model.rnn, rnnkit.Recurrent)
        assert model.rnn.cells[0].scale == 0.5  # the registered keyword arguments are used
        logits, _ = model(torch.randint(0, 7, (2, 3)))
        assert logits.shape == (2, 3, 5)
    finally:
        from rnnkit.cells import registry

        registry._CELLS.pop("tiny_test_cell")


def test_a_cell_from_a_file_or_a_module(tmp_path, monkeypatch):
    path = write_cell(tmp_path)
    entry = get_cell(f"{path}:CoupledGateCell")
    layer = make_layer(entry, 3, 5, num_layers=2, bidirectional=True)
    out, h = layer(torch.randn(2, 4, 3))
    assert out.shape == (2, 4, 10) and h.shape == (4, 2, 5)
    # a relative path is stored absolute, so a run rebuilds it from any folder
    monkeypatch.chdir(tmp_path)
    assert canonical_cell("my_cells.py:CoupledGateCell") == f"{path.resolve()}:CoupledGateCell"
    # the same class as MODULE:CLASS once the folder is importable
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_cell("my_cells:CoupledGateCell").cell.__name__ == "CoupledGateCell"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("lstmm", "--cell must be one of lstm, gru"),
        ("nowhere/cells.py:Cell", "no cell file nowhere/cells.py"),
        ("no_such_module_xyz:Cell", "cannot import module 'no_such_module_xyz'"),
        ("FILE:Cell", "defines no 'Cell'"),
        ("FILE:helper", "is not an nn.Module class"),
        ("FILE:1bad", "give MODULE:CLASS or FILE.py:CLASS"),
        ("BROKEN:Cell", "failed to load: SyntaxError"),
    ],
)
def test_bad_cell_specs_get_one_clear_error(tmp_path, spec, message):
    good = write_cell(tmp_path)
    good.write_text(good.read_text() + "\n\ndef helper():\n    pass\n")
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    spec = spec.replace("FILE", str(good)).replace("BROKEN", str(broken))
    with pytest.raises(CellError, match=message.replace("(", r"\(")):
        get_cell(spec)


def _lm_args(data: Path, run: Path, cell: str, steps: int) -> list[str]:
    return [
        "train", "lm", "--data", str(data), "--out", str(run), "--cell", cell,
        "--hidden-size", "24", "--num-layers", "2", "--embedding-size", "8",
        "--bptt", "16", "--batch-size", "8", "--max-steps", str(steps), "--lr", "1e-2",
        "--warmup-steps", "5", "--eval-every", "10", "--eval-max-tokens", "2000",
        "--checkpoint-every", "10", "--log-every", "1", "--device", "cpu", "--no-progress",
    ]  # fmt: skip


def _classify_args(data: Path, run: Path, cell: str) -> list[str]:
    return [
        "train", "classify", "--data", str(data), "--out", str(run), "--cell", cell,
        "--hidden-size", "12", "--batch-size", "8", "--max-steps", "12", "--eval-every", "6",
        "--device", "cpu", "--no-progress",
    ]  # fmt: skip


def _text(folder: Path) -> Path:
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "the",
        "mat",
        "while",
        "the",
        "dog",
        "ran",
        "to",
        "the",
        "door",
        "and",
        "back",
        "again",
    ]
    g = torch.Generator().manual_seed(0)
    picks = torch.randint(0, len(words), (3000,), generator=g).tolist()
    path = folder / "text.txt"
    path.write_text(" ".join(words[i] for i in picks))
    return path


def _reviews(folder: Path) -> Path:
    rows = ["text,label"]
    for i in range(48):
        good = i % 2 == 0
        rows.append(f"{'a fine warm film' if good else 'a dull cold film'} {i},{good}")
    path = folder / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _losses(run: Path) -> list[float]:
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    return [r["loss"] for r in records if "loss" in r]


@pytest.mark.parametrize("which", ["user_file", "lnlstm"])
def test_a_cell_works_through_every_verb_of_the_command_line(tmp_path, capsys, which):
    cell = f"{write_cell(tmp_path)}:CoupledGateCell" if which == "user_file" else "lnlstm"
    data, run = _text(tmp_path), tmp_path / "lm"
    assert main(_lm_args(data, run, cell, 40)) == 0
    stored = json.loads((run / "config.json").read_text())["task"]["model"]["cell"]
    assert stored == (f"{(tmp_path / 'my_cells.py').resolve()}:CoupledGateCell" if
                      which == "user_file" else "lnlstm")  # fmt: skip
    losses = _losses(run)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.3  # it learns
    capsys.readouterr()
    assert main(["sample", str(run), "--prime", "the ", "--length", "40", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert main(["sample", str(run), "--prime", "the ", "--length", "40", "--seed", "3"]) == 0
    assert capsys.readouterr().out == first and len(first) >= 44
    assert main(["evaluate", str(run), "--split", "val", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["loss"] < metrics["unigram_loss"]
    # --resume rebuilds the same cell from config.json and continues to a larger budget
    assert main([*_lm_args(data, run, "lstm", 50)[:6], "--max-steps", "50", "--resume",
                 "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 50
    # the diagnoses of a trained model take any cell (gate statistics say which cells they know)
    stem = tmp_path / "hidden"
    args = ["diagnose", "hidden", str(run), "--length", "200", "--show", "100"]
    assert main([*args, "--stem", str(stem)]) == 0
    assert stem.with_suffix(".png").exists()
    png = str(tmp_path / "flow.png")
    assert main(["diagnose", "gradients", "--run", str(run), "--steps", "10", "--png", png]) == 0
    capsys.readouterr()
    gates = ["diagnose", "gates", "--run", str(run), "--steps", "10", "--png", png]
    assert main(gates) == 2
    assert "gate statistics are for LSTM and GRU layers" in capsys.readouterr().err
    # the same cell in another task
    clf = tmp_path / "clf"
    assert main(_classify_args(_reviews(tmp_path), clf, cell)) == 0
    assert main(["evaluate", str(clf), "--json", "--plot", "none"]) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out.splitlines()[-1])
    if which == "user_file":  # the cell file moved: every verb names it
        (tmp_path / "my_cells.py").rename(tmp_path / "elsewhere.py")
        assert main(["evaluate", str(run), "--split", "val"]) == 2
        assert "no cell file" in capsys.readouterr().err


@pytest.mark.parametrize("name", cell_names())
def test_every_registered_cell_samples_as_its_forward_pass_predicts(name):
    from rnnkit.decoding import SamplingConfig, sample_text, stepper_for
    from rnnkit.text.vocab import Vocab

    vocab = Vocab.build("abcdefgh \n", "char")
    torch.manual_seed(0)
    model = ManyToMany(len(vocab), vocab_size=len(vocab), embedding_size=4, cell=name,
                       hidden_size=6, num_layers=2).eval()  # fmt: skip
    text = sample_text(model, vocab, prime="abc", length=12, sampling=SamplingConfig(argmax=True))
    assert len(text) == 12
    # greedy text is what the whole-sequence forward pass picks, step by step
    ids = vocab.encode("abc" + text)
    with torch.no_grad():
        logits, _ = model(ids[:-1].unsqueeze(0))
    assert logits[0, 2:].argmax(-1).tolist() == ids[3:].tolist()
    assert stepper_for(model) is not None
