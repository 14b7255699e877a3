"""The memory tasks: the data are what the papers describe; the quick benchmark runs end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.diagnose.memory import (
    ADDING_BASELINE,
    MemoryConfig,
    MemoryResult,
    adding_batch,
    copy_baseline,
    copy_batch,
    train_memory,
)
from rnnkit.diagnose.memory_bench import (
    QUICK,
    bench_memory,
    benchmark_setup,
    format_lr,
    format_table,
    longest_solved,
    parse_lr,
)


def test_adding_batch():
    x, y = adding_batch(4000, 30, torch.Generator().manual_seed(0))
    assert x.shape == (4000, 30, 2) and y.shape == (4000,)
    markers = x[..., 1]
    assert torch.all(markers.sum(1) == 2)
    first, second = markers[:, :15].argmax(1), markers[:, 15:].argmax(1) + 15
    assert torch.all(markers[:, :15].sum(1) == 1)  # one marker in each half
    rows = torch.arange(4000)
    torch.testing.assert_close(y, x[rows, first, 0] + x[rows, second, 0])
    # always answering 1 scores the variance of a sum of two U(0, 1): 1/6
    assert float(((y - 1) ** 2).mean()) == pytest.approx(ADDING_BASELINE, rel=0.05)


def test_copy_batch_and_baseline():
    T = 7
    x, y = copy_batch(5, T, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, T + 20)
    assert torch.all((x[:, :10] >= 1) & (x[:, :10] <= 8))
    assert torch.all(x[:, 10 : 10 + T - 1] == 0) and torch.all(x[:, 10 + T - 1] == 9)
    assert torch.all(x[:, 10 + T :] == 0)
    assert torch.all(y[:, :-10] == 0) and torch.equal(y[:, -10:], x[:, :10])
    assert copy_baseline(100) == pytest.approx(10 * math.log(8) / 120)


def test_a_short_adding_problem_is_solved():
    """The machinery learns: an LSTM solves T = 5 within a few hundred steps."""
    cfg = MemoryConfig(hidden_size=32, max_steps=600, eval_every=50, eval_size=256, lr=1e-2)
    r = train_memory("adding", "lstm", 5, cfg, keep_model=True)
    assert r.solved and r.metric < 0.01 and r.steps < 600
    assert r.history[-1] == (r.steps, r.metric) and r.model is not None


def test_table_and_stop_after_fail():
    cfg = MemoryConfig(hidden_size=8, batch_size=8, max_steps=4, eval_every=2, eval_size=16)
    results = bench_memory("copy", ["rnn", "gru"], [3, 2, 5], cfg)
    assert [(r.cell, r.length) for r in results] == [("rnn", 2), ("gru", 2)]  # failed, skipped
    table = format_table(results, [2, 3, 5])
    assert "skipped" in table and "none" in table and "recall" in table
    results = bench_memory("copy", ["rnn"], [2, 3], cfg, stop_after_fail=False)
    assert len(results) == 2
    fake = [
        MemoryResult("adding", "lstm", t, t < 100, 10, 1.0, 0.001, 0.001, ADDING_BASELINE)
        for t in (10, 50, 100)
    ]
    assert longest_solved(fake, "lstm") == 50
    assert "T=50" in format_table(fake)


def test_quick_benchmark_end_to_end(tmp_path, capsys):
    png = tmp_path / "m.png"
    assert main(["bench", "memory", "--quick", "--png", str(png), "--horizons"]) == 0
    out = capsys.readouterr().out
    assert "adding" in out and "solves up to" in out and "memory horizons" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    args = ["bench", "memory", "--quick", "--task", "copy", "--cells", "lstm", "--json"]
    assert main([*args, "--png", str(png)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task"] == "copy" and data["runs"][0]["cell"] == "lstm"
    assert data["runs"][0]["baseline"] == pytest.approx(copy_baseline(5))


def test_each_task_has_its_own_default_budget(monkeypatch, tmp_path, capsys):
    """The copy task gets its own steps, width and lengths; flags given still win."""
    import rnnkit.diagnose.memory_bench as memory

    seen = {}

    def fake_bench(task, cells, lengths, cfg, **kw):
        seen[task] = (lengths, cfg.max_steps, cfg.hidden_size)
        return [MemoryResult(task, "gru", lengths[0], True, 1, 0.0, 1.0, 0.0, 0.5)]

    monkeypatch.setattr(memory, "bench_memory", fake_bench)
    monkeypatch.setattr(memory, "plot_memory", lambda results, out: None)
    png = str(tmp_path / "m.png")
    assert main(["bench", "memory", "--task", "copy", "--png", png]) == 0
    assert main(["bench", "memory", "--task", "adding", "--png", png]) == 0
    assert seen["copy"] == ([10, 20, 50], 6000, 128)
    assert seen["adding"] == ([10, 20, 50, 100, 200, 400], 2500, 64)
    assert main(["bench", "memory", "--task", "copy", "--steps", "9", "--png", png]) == 0
    assert seen["copy"] == ([10, 20, 50], 9, 128)


def test_benchmark_setup_fills_the_task_defaults_and_quick_wins():
    lengths, cfg = benchmark_setup("copy")
    assert lengths == [10, 20, 50] and (cfg.max_steps, cfg.hidden_size) == (6000, 128)
    assert cfg.batch_size == MemoryConfig().batch_size  # neither task sets it
    lengths, cfg = benchmark_setup("adding", lengths=[3, 4], max_steps=9, batch_size=None)
    assert lengths == [3, 4] and cfg.max_steps == 9 and cfg.hidden_size == 64
    assert cfg.batch_size == MemoryConfig().batch_size  # None: not given
    lengths, cfg = benchmark_setup("adding", quick=True, max_steps=9, seed=3)
    assert lengths == QUICK["lengths"] and cfg.max_steps == QUICK["max_steps"] and cfg.seed == 3
    with pytest.raises(ValueError, match="--task"):
        benchmark_setup("addition")
    with pytest.raises(ValueError, match="--lengths"):
        benchmark_setup("adding", lengths=[0, 5])


def test_lr_flag_round_trips_and_bad_input_names_the_flag():
    assert parse_lr("1e-2") == 0.01
    assert parse_lr("lstm=1e-2, rnn=5e-3") == {"lstm": 0.01, "rnn": 0.005}
    assert parse_lr(format_lr(MemoryConfig().lr)) == MemoryConfig().lr
    with pytest.raises(ValueError, match="--lr"):
        parse_lr("lstm=fast")
    with pytest.raises(ValueError, match="--cells"):
        bench_memory("adding", ["lstm", "transformer"], [5], MemoryConfig(max_steps=1))


def test_horizons_are_kept_without_the_models():
    cfg = MemoryConfig(hidden_size=8, batch_size=8, max_steps=2, eval_every=2, eval_size=16)
    (r,) = bench_memory("adding", ["gru"], [6], cfg, horizons=True)
    assert r.model is None and r.flow is not None and r.flow.steps == 6
    row = r.as_dict()
    assert row["horizon"]["verdict"] in ("vanishing", "exploding", "holds")
    assert "model" not in row and "flow" not in row
    json.dumps(row)


def test_cli_bad_flags_are_one_line_errors(capsys):
    assert main(["bench", "memory", "--quick", "--cells", "rnn,cnn"]) == 2
    assert main(["bench", "memory", "--lengths", "10,x"]) == 2
    assert main(["bench", "memory", "--lr", "lstm=fast"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[2].split()[0] for line in err[-3:]] == ["--cells", "--lengths", "--lr"]


def test_the_new_cells_and_chrono_run_in_the_benchmark(tmp_path, capsys):
    png = str(tmp_path / "m.png")
    args = ["bench", "memory", "--quick", "--png", png, "--json"]
    assert main([*args, "--cells", "lngru,mingru,minlstm"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert list(dict.fromkeys(r["cell"] for r in runs)) == ["lngru", "mingru", "minlstm"]
    assert all(math.isfinite(r["metric"]) for r in runs)
    assert main([*args, "--cells", "lstm,gru", "--init", "chrono"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert list(dict.fromkeys(r["cell"] for r in runs)) == ["lstm chrono", "gru chrono"]
    # chrono sets the forget gate from T_max (each run's length unless given), not to 1
    cfg = MemoryConfig(hidden_size=64, max_steps=0, eval_size=4, init="chrono")
    model = train_memory("adding", "lstm", 50, cfg, keep_model=True).model
    b_f = model.rnn.bias_ih_l0[64:128].detach()
    assert float(b_f.exp().max()) <= 49 + 1e-3 and float(b_f.std()) > 0.3
    assert main([*args, "--cells", "rnn", "--init", "chrono"]) == 2  # one line, not a traceback
    assert "--init chrono is for" in capsys.readouterr().err
