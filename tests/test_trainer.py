"""The trainer's loop on tiny tasks: best checkpoint, stop signals, locks, non-finite figures,
checkpoint files."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

from rnnkit.cli.train_flags import report
from rnnkit.training import RunInUseError
from rnnkit.training import checkpoint as ckpt
from rnnkit.training.config import TrainConfig
from rnnkit.training.run_lock import RunLock
from rnnkit.training.task import Task
from rnnkit.training.trainer import BEST, CONFIG, LAST, METRICS, Counters, RunResult, Trainer


class ScriptedTask(Task):
    """A tiny regression whose validation figures follow a script, one per evaluation."""

    kind = "scripted"

    def __init__(self, script: list[float], monitor: tuple[str, str] | None = None) -> None:
        self.script = list(script)
        if monitor:
            self.monitor = monitor

    def build_model(self) -> nn.Module:
        return nn.Linear(2, 1)

    def train_batch(self, step: int):
        x = torch.randn(4, 2, generator=torch.Generator().manual_seed(step))
        return x, x.sum(1, keepdim=True)

    def batch_loss(self, model, batch):
        x, y = batch
        return ((model(x) - y) ** 2).mean(), len(x)

    def evaluate(self, model, split, limit=None) -> dict:
        value = self.script.pop(0)
        return {"loss": value, "accuracy": value}

    def describe(self) -> dict:
        return {"kind": self.kind}


class CarryTask(Task):
    """A task that carries a state between batches, draws from the global RNG (dropout and a
    noise term) and can misbehave on cue: send itself a signal, or give a NaN loss or an
    infinite gradient at chosen steps (1-based, as in metrics.jsonl)."""

    kind = "carry"

    def __init__(self, signal_at=None, signum=signal.SIGTERM, nan_at=(), inf_grad_at=()):
        self.state = None
        self.signal_at, self.signum = signal_at, signum
        self.nan_at, self.inf_grad_at = set(nan_at), set(inf_grad_at)

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.3), nn.Tanh())

    def train_batch(self, step: int):
        return step, torch.randn(4, 3, generator=torch.Generator().manual_seed(step))

    def batch_loss(self, model, batch):
        step, x = batch
        out = model(x if self.state is None else x + self.state)
        self.state = out.detach()
        if step + 1 == self.signal_at:
            # the signal lands in the middle of a step, after the carried state has moved on
            os.kill(os.getpid(), self.signum)
        loss = ((out - 0.5) ** 2).mean() * (1 + 0.01 * torch.rand(()))
        if step + 1 in self.nan_at:
            loss = loss * math.nan
        if step + 1 in self.inf_grad_at:
            loss = loss + InfGrad.apply(out).sum() * 0
        return loss, len(x)

    def evaluate(self, model, split, limit=None) -> dict:
        x = torch.linspace(-1, 1, 12).reshape(4, 3)
        return {"loss": float(((model(x) - 0.5) ** 2).mean())}

    def carry(self) -> dict:
        return {} if self.state is None else {"h": self.state}

    def restore_carry(self, tensors) -> None:
        self.state = tensors.get("h")

    def describe(self) -> dict:
        return {"kind": self.kind}


class InfGrad(torch.autograd.Function):
    """The identity, whose gradient is infinite."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, math.inf)


def config(out, **kw) -> TrainConfig:
    defaults = dict(out=str(out), max_steps=12, eval_every=4, checkpoint_every=5,
                    warmup_steps=2, log_every=1, progress=False)  # fmt: skip
    return TrainConfig(**{**defaults, **kw})


def checkpoint_tensors(run_dir) -> dict[str, torch.Tensor]:
    return ckpt.load(run_dir / LAST)[0]


def assert_same_state(a, b) -> None:
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert sorted(ta) == sorted(tb)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


# -- the best checkpoint ---------------------------------------------------------------------------
def test_a_nan_monitored_figure_never_blocks_a_later_best(tmp_path):
    class Task(ScriptedTask):
        def evaluate(self, model, split, limit=None) -> dict:
            return {"loss": 1.0, "accuracy": self.script.pop(0)}

    cfg = config(tmp_path / "run", max_steps=4, eval_every=1, patience=2)
    result = Trainer(Task([math.nan, 0.5, 0.7, 0.6], ("accuracy", "max")), cfg).run()
    assert result.counters.best_step == 3
    assert ckpt.load(tmp_path / "run" / BEST)[1]["step"] == 3


# -- stop signals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_step_saves_that_step_and_resume_equals_an_uninterrupted_run(
    tmp_path, signum, capsys
):
    before = signal.getsignal(signum)
    Trainer(CarryTask(), config(tmp_path / "full")).run()
    result = Trainer(CarryTask(signal_at=7, signum=signum), config(tmp_path / "cut")).run()
    assert signal.getsignal(signum) is before  # the previous handler is back
    assert result.interrupted and result.signal == signum and result.counters.step == 7
    assert report(result, count="items", best="loss") == 128 + signum
    assert "at step 7; the checkpoint is saved" in capsys.readouterr().err
    meta = ckpt.load(tmp_path / "cut" / LAST)[1]
    assert meta["counters"]["step"] == 7
    done = Trainer(CarryTask(), config(tmp_path / "cut", resume=True)).run()
    assert not done.interrupted and done.counters.step == 12
    # weights, optimizer, carried state and RNG: all equal to the uninterrupted run's
    assert_same_state(tmp_path / "full", tmp_path / "cut")


def test_a_second_signal_while_saving_finishes_the_save(tmp_path, monkeypatch, capfd):
    save = ckpt.save

    def save_under_fire(path, tensors, meta):
        if meta.get("counters", {}).get("step") == 3:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again while the checkpoint is written
        save(path, tensors, meta)

    monkeypatch.setattr(ckpt, "save", save_under_fire)
    result = Trainer(CarryTask(signal_at=3, signum=signal.SIGINT), config(tmp_path / "r")).run()
    assert result.interrupted and result.counters.step == 3
    assert "already stopping" in capfd.readouterr().err
    assert ckpt.load(tmp_path / "r" / LAST)[1]["counters"]["step"] == 3
    assert not list((tmp_path / "r").glob(".*.tmp"))


def test_a_callback_that_raises_keyboard_interrupt_stops_at_the_step_boundary(tmp_path):
    def stop_at_4(trainer, record):
        if record["step"] == 4:
            raise KeyboardInterrupt

    result = Trainer(CarryTask(), config(tmp_path / "r"), callbacks=(stop_at_4,)).run()
    assert result.interrupted and result.signal is None and result.counters.step == 4
    assert result.last_val  # step 4's evaluation ran before the stop
    assert report(result, count="items", best="loss") == 130


def test_report_before_any_validation_says_so(capsys):
    result = RunResult(Path("r"), Counters(step=3), {}, True, signal.SIGTERM)
    assert report(result, count="tokens", best="loss") == 143
    out = capsys.readouterr().out
    assert "no validation yet" in out and "inf" not in out


# -- the run folder --------------------------------------------------------------------------------
def test_a_second_trainer_is_kept_off_a_folder_in_use(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    in_use = rf"{run} is in use .*pid {os.getpid()} on"
    with RunLock(run), pytest.raises(RunInUseError, match=in_use):
        Trainer(CarryTask(), config(run)).run()
    assert not (run / CONFIG).exists()
    # a lock file left by a killed trainer holds no lock: it blocks nobody
    (run / ".lock").write_text('{"pid": 999999, "host": "gone"}')
    assert Trainer(CarryTask(), config(run)).run().counters.step == 12
    assert not (run / ".lock").exists()


def test_stale_temporary_files_are_removed_and_the_last_checkpoint_loads(tmp_path):
    run = tmp_path / "r"
    Trainer(CarryTask(), config(run, max_steps=5)).run()
    good = (run / LAST).read_bytes()
    # what a kill in the middle of a checkpoint write leaves behind
    (run / ".checkpoint.safetensors.x1y2.tmp").write_bytes(good[: len(good) // 2])
    (run / ".metrics.jsonl.abc.tmp").write_bytes(b'{"step": 9')
    Trainer(CarryTask(), config(run, resume=True)).run()
    assert not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("resume", [True, False])
def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path, resume, capsys):
    Trainer(CarryTask(), config(tmp_path / "full")).run()
    run = tmp_path / "r"
    Trainer(CarryTask(), config(run)).run()
    for name in (LAST, "loss.png"):  # as if killed at step 4, after validation, before step 5
        (run / name).unlink(missing_ok=True)
    result = Trainer(CarryTask(), config(run, resume=resume)).run()
    err = capsys.readouterr().err
    assert "before its first checkpoint" in err
    assert ("from step 0" in err) == resume
    assert result.counters.step == 12
    assert_same_state(tmp_path / "full", run)
    steps = [r["step"] for r in map(json.loads, (run / METRICS).open())]
    assert steps == sorted(steps)  # the first attempt's records are gone


def test_a_missing_safetensors_is_reported_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ImportError, match=r"pip install 'rnnkit\[train\]'"):
        Trainer(CarryTask(), config(tmp_path / "r")).run()
    assert not (tmp_path / "r").exists()


def test_resume_without_a_run_folder_is_an_error(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="no run folder"):
        Trainer(CarryTask(), config(tmp_path / "none", resume=True)).run()


# -- non-finite figures ----------------------------------------------------------------------------
def test_a_nan_training_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "r"
    with pytest.raises(FloatingPointError) as e:
        Trainer(CarryTask(nan_at={9}), config(run, checkpoint_every=4, eval_every=3)).run()
    message = str(e.value)
    assert "training loss became nan at step 9" in message
    assert "last checkpoint (step 8) is kept" in message and "\n" not in message
    assert ckpt.load(run / LAST)[1]["counters"]["step"] == 8
    assert ckpt.load(run / BEST)[1]["step"] in (3, 6)


def test_an_infinite_gradient_stops_the_run(tmp_path):
    bad = r"gradient norm became (inf|nan) at step 6 \(loss"
    with pytest.raises(FloatingPointError, match=bad):
        Trainer(CarryTask(inf_grad_at={6}), config(tmp_path / "r", grad_clip=0)).run()


def test_a_nan_validation_loss_stops_and_keeps_checkpoint_and_best(tmp_path):
    run = tmp_path / "r"
    cfg = config(run, max_steps=8, eval_every=2, checkpoint_every=2)
    with pytest.raises(FloatingPointError, match="validation loss became nan at step 4") as e:
        Trainer(ScriptedTask([2.0, math.nan, 1.0, 1.0]), cfg).run()
    assert "its last checkpoint (step 2) is kept" in str(e.value)
    assert ckpt.load(run / LAST)[1]["counters"]["step"] == 2
    assert ckpt.load(run / BEST)[1]["step"] == 2


def test_skip_policy_skips_bad_batches_and_leaves_the_weights_alone(tmp_path, capsys):
    run = tmp_path / "r"
    result = Trainer(
        CarryTask(nan_at={5}, inf_grad_at={6}), config(run, nan_policy="skip", max_steps=8)
    ).run()
    assert result.counters.step == 8 and result.counters.skipped == 2
    assert "batch skipped (2 in a row, 2 in all)" in capsys.readouterr().err
    records = [json.loads(line) for line in (run / METRICS).open()]
    assert [r["step"] for r in records if "skipped" in r] == [5, 6]
    assert all(math.isfinite(t.float().sum()) for t in checkpoint_tensors(run).values())


def test_skip_policy_stops_after_too_many_bad_batches_in_a_row(tmp_path):
    task = CarryTask(nan_at=set(range(3, 40)))
    with pytest.raises(FloatingPointError, match="the 11th batch skipped in a row"):
        Trainer(task, config(tmp_path / "r", nan_policy="skip", max_steps=40)).run()


def test_nan_policy_is_checked():
    with pytest.raises(ValueError, match="--nan-policy must be stop or skip, got 'maybe'"):
        config("r", nan_policy="maybe")


# -- checkpoint files ------------------------------------------------------------------------------
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoints_get_the_usual_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        ckpt.save(tmp_path / "c.safetensors", {"w": torch.ones(2)}, {})
        ckpt.atomic_write_json(tmp_path / "c.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "c.safetensors").stat().st_mode & 0o777 == mode
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == mode


def test_a_flipped_byte_in_the_weights_is_caught(tmp_path):
    path = tmp_path / "c.safetensors"
    ckpt.save(path, {"w": torch.arange(64, dtype=torch.float32)}, {"a": 1})
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x01  # inside the payload: still a valid float, so only the checksum can tell
    path.write_bytes(bytes(raw))
    with pytest.raises(ckpt.CheckpointError, match="is damaged"):
        ckpt.load(path)


def test_a_checkpoint_without_a_checksum_still_loads(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    save_file({"w": torch.ones(3)}, path, metadata={"rnnkit": json.dumps({"step": 4})})
    tensors, meta = ckpt.load(path)
    assert torch.equal(tensors["w"], torch.ones(3)) and meta == {"step": 4}


def test_weights_that_are_not_finite_are_refused_at_loading(tmp_path):
    from rnnkit.training.runs import load_weights

    model = nn.Linear(2, 2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["weight"][0, 0] = math.nan  # an old run that diverged before saving refused it
    ckpt.save(tmp_path / BEST, ckpt.with_prefix("model", state), {})
    with pytest.raises(ckpt.CheckpointError, match=r"NaN or infinite weights \(weight\)"):
        load_weights(model, tmp_path, "best", "cpu")


# -- the task's default budget --------------------------------------------------------------------


class BudgetedTask(ScriptedTask):
    """A scripted task with a budget of its own for runs given none."""

    default_budget: ClassVar[dict[str, int]] = {"max_steps": 8, "patience": 1}


def test_a_run_given_no_budget_takes_the_tasks_and_stores_it(tmp_path, capsys):
    cfg = TrainConfig(out=str(tmp_path / "r"), eval_every=2, warmup_steps=1, progress=False)
    assert (cfg.max_steps, cfg.patience, cfg.budget_given) == (5000, None, False)
    # validation 1.0 then worse: patience 1 stops at the second evaluation (step 4), within
    # the task's 8 steps; without the task's budget the run would go to 5000
    result = Trainer(BudgetedTask([1.0, 2.0, 3.0, 4.0, 5.0]), cfg).run()
    assert result.counters.step == 4 and result.counters.stopped_early
    stored = json.loads((tmp_path / "r" / CONFIG).read_text())["train"]
    assert (stored["max_steps"], stored["patience"]) == (8, 1)
    assert "budget: scripted's default (--max-steps 8 --patience 1)" in capsys.readouterr().err
    assert (cfg.max_steps, cfg.patience) == (5000, None)  # the caller's config is untouched


def test_a_budget_given_by_the_user_is_kept(tmp_path):
    cfg = TrainConfig(out=str(tmp_path / "r"), max_steps=6, eval_every=2, warmup_steps=1,
                      progress=False)  # fmt: skip
    result = Trainer(BudgetedTask([1.0, 2.0, 3.0, 4.0]), cfg).run()
    assert result.counters.step == 6 and not result.counters.stopped_early


def test_a_task_without_a_budget_of_its_own_trains_the_trainers_5000_steps(tmp_path):
    cfg = TrainConfig(out=str(tmp_path / "r"), progress=False)
    assert Trainer(ScriptedTask([]), cfg).cfg.max_steps == 5000
