"""Real processes stopped the hard way: ``python -m rnnkit train lm`` sent SIGTERM or SIGKILL at
random moments, then resumed; the final weights must equal an uninterrupted run's bit for bit.
A second trainer on a folder in use is turned away."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.training import checkpoint as ckpt
from rnnkit.training.trainer import BEST, LAST

STEPS = 400


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 20 kB of generated text: sentences of made-up words."""
    r = random.Random(0)
    words = ["".join(r.choice("abcdefghij") for _ in range(r.randint(2, 7))) for _ in range(200)]
    lines = []
    while sum(map(len, lines)) < 20_000:
        lines.append(" ".join(r.choice(words) for _ in range(12)) + ".\n")
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("".join(lines))
    return path


def train_flags(out: Path, max_steps: int = STEPS) -> list[str]:
    return [
        "--out", str(out), "--max-steps", str(max_steps), "--batch-size", "4",
        "--checkpoint-every", "5", "--eval-every", "10", "--log-every", "1", "--warmup-steps",
        "20", "--device", "cpu", "--no-progress", "--seed", "0",
    ]  # fmt: skip


def fresh_args(corpus: Path, out: Path, max_steps: int = STEPS) -> list[str]:
    model = ["--hidden-size", "16", "--num-layers", "2", "--dropout", "0.2", "--bptt", "16"]
    return ["train", "lm", "--data", str(corpus), *model, *train_flags(out, max_steps)]


def resume_args(out: Path, max_steps: int = STEPS) -> list[str]:
    return ["train", "lm", "--resume", *train_flags(out, max_steps)]


def start(args: list[str]) -> subprocess.Popen:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rnnkit", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def last_step(run: Path) -> int:
    """The last step metrics.jsonl has reached (0 before the first)."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        if line.startswith('{"step": '):
            return int(line.split(",")[0].split(":")[1])
    return 0


def wait_for_step(proc: subprocess.Popen, run: Path, step: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while last_step(run) < step:
        assert proc.poll() is None, f"the run ended before step {step}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no step {step} after {timeout} s"
        time.sleep(0.005)


def reference(corpus: Path, out: Path, max_steps: int = STEPS) -> None:
    """The uninterrupted run, in this process, on one thread like the child processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(fresh_args(corpus, out, max_steps)) == 0
    finally:
        torch.set_num_threads(threads)


def assert_same_final_state(a: Path, b: Path) -> None:
    for name in (LAST, BEST):  # LAST: model.*, optim.*, rng.*, carry.*; BEST: model.*
        ta, tb = ckpt.load(a / name)[0], ckpt.load(b / name)[0]
        assert sorted(ta) == sorted(tb)
        assert any(k.startswith("model.") for k in ta)
        for k in ta:
            assert torch.equal(ta[k], tb[k]), (name, k)


def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path, corpus, capsys):
    steps = 120  # short: this one runs by default
    reference(corpus, tmp_path / "full", steps)
    run = tmp_path / "cut"
    proc = start(fresh_args(corpus, run, steps))
    wait_for_step(proc, run, 22)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "the checkpoint is saved" in err
    assert out.startswith("interrupted: ")
    stopped = ckpt.load(run / LAST)[1]["counters"]["step"]
    assert 22 <= stopped < steps  # saved where it stopped, not at the last multiple of 5
    assert main(resume_args(run, steps)) == 0
    assert_same_final_state(tmp_path / "full", run)


def test_a_second_trainer_is_refused_while_the_first_runs(tmp_path, corpus, capsys):
    run = tmp_path / "busy"
    proc = start(fresh_args(corpus, run, max_steps=100_000))
    try:
        wait_for_step(proc, run, 1)
        assert main(resume_args(run, max_steps=100_000)) == 2
        err = capsys.readouterr().err
        assert f"{run} is in use by another trainer (pid {proc.pid} on" in err
        assert main(fresh_args(corpus, run)) == 2  # nor can a fresh start take it over
        assert f"pid {proc.pid}" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path, corpus):
    reference(corpus, tmp_path / "full")
    run = tmp_path / "killed"
    r = random.Random(1)
    kills = tried = mid_write = 0
    args = fresh_args(corpus, run)
    while tried < 6:
        proc = start(args)
        tried += 1
        # the first kill lands soon after the run folder appears: most likely before the first
        # checkpoint; the later ones land anywhere in training, checkpoint writes included
        if tried == 1:
            while not (run / "config.json").exists() and proc.poll() is None:
                time.sleep(0.002)
        else:
            wait_for_step(proc, run, last_step(run) + 1)
            time.sleep(r.uniform(0, 0.15))
        proc.kill()
        proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            kills += 1
            mid_write += bool(list(run.glob(".*.tmp")))  # it hit a write under way
            if (run / LAST).exists():  # whatever moment it hit, the checkpoint loads
                ckpt.load(run / LAST)
        args = resume_args(run)
    print(f"{kills} of {tried} kills landed, {mid_write} in the middle of a write")
    assert kills >= 5, f"only {kills} of {tried} kills landed before the run ended"
    assert main(resume_args(run)) == 0
    assert not list(run.glob(".*.tmp"))
    assert_same_final_state(tmp_path / "full", run)
