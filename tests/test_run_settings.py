"""Where a run's settings come from: defaults, ``--config FILE``, flags; and ``--resume``, which
takes every setting from the run and accepts only a larger budget beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnkit import __version__
from rnnkit.cli.main import main
from rnnkit.training.config import TrainConfig
from rnnkit.training.trainer import learning_rate


def _text(folder: Path) -> Path:
    path = folder / "text.txt"
    path.write_text("abcabd abcabe " * 800)
    return path


def _args(data: Path, run: Path, *extra: str) -> list[str]:
    return [
        "train", "lm", "--data", str(data), "--out", str(run), "--hidden-size", "8",
        "--num-layers", "1", "--embedding-size", "4", "--bptt", "8", "--eval-every", "5",
        "--checkpoint-every", "5", "--log-every", "1", "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_restores_every_stored_setting(tmp_path):
    data, run = _text(tmp_path), tmp_path / "run"
    first = ["--batch-size", "4", "--lr", "0.01", "--warmup-steps", "0", "--max-steps", "10"]
    assert main(_args(data, run, *first)) == 0
    # a bare resume with a larger budget: batch size, lr and warm-up are the run's, not defaults
    assert main(["train", "lm", "--out", str(run), "--resume", "--max-steps", "20",
                 "--no-progress"]) == 0  # fmt: skip
    stored = json.loads((run / "config.json").read_text())
    assert stored["train"]["max_steps"] == 20 and stored["train"]["lr"] == 0.01
    assert stored["budget_history"] == [{"max_steps": 10, "time_budget": None,
                                         "token_budget": None}]  # fmt: skip
    cfg = TrainConfig(out=str(run), lr=0.01, warmup_steps=0, max_steps=20)
    after = [r for r in _records(run) if "lr" in r and r["step"] > 10]
    assert [r["step"] for r in after] == list(range(11, 21))
    for r in after:  # the schedule of the stored settings toward the new budget
        assert r["lr"] == pytest.approx(learning_rate(cfg, r["step"] - 1, (r["step"] - 1) / 20))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr", "0.5"], "--lr 0.5 differs from the run's 0.01"),
        (["--batch-size", "16"], "--batch-size 16 differs from the run's 4"),
        (["--hidden-size", "32"], "--hidden-size 32 differs from the run's 8"),
        (["--cell", "gru"], "--cell gru differs from the run's lstm"),
        (["--max-steps", "5"], "--max-steps on --resume must be at least the run's 10"),
        (["--config", "x.json"], "--config starts a run"),
    ],
)
def test_resume_refuses_a_flag_that_would_change_the_run(tmp_path, capsys, flags, message):
    data, run = _text(tmp_path), tmp_path / "run"
    first = ["--batch-size", "4", "--lr", "0.01", "--max-steps", "10"]
    assert main(_args(data, run, *first)) == 0
    before = (run / "config.json").read_text(), (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main(["train", "lm", "--out", str(run), "--resume", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert ((run / "config.json").read_text(), (run / "metrics.jsonl").read_text()) == before
    # repeating the run's own flags (the first command plus --resume) is fine
    assert main([*_args(data, run, *first), "--resume"]) == 0


def test_config_file_starts_a_run_and_flags_override_it(tmp_path):
    data = _text(tmp_path)
    assert main(_args(data, tmp_path / "a", "--batch-size", "4", "--max-steps", "3")) == 0
    # a run's config.json as --config, into another folder, one setting changed
    config = str(tmp_path / "a" / "config.json")
    assert main(["train", "lm", "--config", config, "--out", str(tmp_path / "b"),
                 "--hidden-size", "12", "--no-progress"]) == 0  # fmt: skip
    a, b = (json.loads((tmp_path / r / "config.json").read_text()) for r in "ab")
    assert b["task"]["model"] == {**a["task"]["model"], "hidden_size": 12}
    assert b["task"]["data"] == a["task"]["data"]
    assert {k: v for k, v in b["train"].items() if k != "out"} == {
        k: v for k, v in a["train"].items() if k != "out"
    }
    # a hand-written file, flat or in sections, JSON or YAML
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"data": str(data), "hidden_size": 6, "max_steps": 2, "bptt": 8}))
    assert main(["train", "lm", "--config", str(flat), "--out", str(tmp_path / "c"),
                 "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    c = json.loads((tmp_path / "c" / "config.json").read_text())
    assert c["task"]["model"]["hidden_size"] == 6 and c["train"]["max_steps"] == 2
    pytest.importorskip("yaml")
    yml = tmp_path / "run.yaml"
    yml.write_text(f"data:\n  data: {data}\n  bptt: 8\nmodel:\n  hidden_size: 5\ntrain:\n"
                   "  max_steps: 2\n")  # fmt: skip
    assert main(["train", "lm", "--config", str(yml), "--out", str(tmp_path / "d"),
                 "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    d = json.loads((tmp_path / "d" / "config.json").read_text())
    assert d["task"]["model"]["hidden_size"] == 5 and d["task"]["data"]["bptt"] == 8


@pytest.mark.parametrize(
    "content, message",
    [
        ({"hidden_size": "big"}, "hidden_size must be int, got 'big'"),
        ({"hidden_sise": 3}, "unknown settings ['hidden_sise']"),
        ({"model": {"cell": 3}}, "cell must be str, got 3"),
        ([1, 2], "expected an object of settings"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_config_file_gets_one_line(tmp_path, capsys, content, message):
    data = _text(tmp_path)
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    code = main(["train", "lm", "--config", str(path), "--data", str(data),
                 "--out", str(tmp_path / "r"), "--no-progress"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and not (tmp_path / "r").exists()


def test_a_config_of_another_task_is_refused(tmp_path, capsys):
    data = _text(tmp_path)
    assert main(_args(data, tmp_path / "a", "--max-steps", "2")) == 0
    capsys.readouterr()
    code = main(["train", "classify", "--config", str(tmp_path / "a" / "config.json"),
                 "--data", "x.csv", "--out", str(tmp_path / "b")])  # fmt: skip
    assert code == 2
    assert "a 'lm' run's settings, not 'classify'" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"rnnkit {__version__}"
