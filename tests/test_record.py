"""What a run records and shows: the task's unit and loss label (progress bar, config.json,
plot), the plot's panels, and the optional TensorBoard log read back."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from rnnkit.training.config import TrainConfig
from rnnkit.training.plot import best_step, draw_run, figure_series, plot_run
from rnnkit.training.task import Task
from rnnkit.training.trainer import CONFIG, METRICS, Trainer


class PlainTask(Task):
    """A regression that sets none of the optional attributes (unit, loss label, monitor: the
    base class's defaults apply); its
    validation reports an accuracy-like score and a count. It raises ``KeyboardInterrupt`` in
    the middle of step ``interrupt_at`` (1-based), as a Ctrl-C inside a task's code would."""

    kind = "plain"

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.interrupt_at = interrupt_at

    def build_model(self) -> nn.Module:
        return nn.Linear(2, 1)

    def train_batch(self, step: int):
        x = torch.randn(4, 2, generator=torch.Generator().manual_seed(step))
        return step, x, x.sum(1, keepdim=True)

    def batch_loss(self, model, batch):
        step, x, y = batch
        if step + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        return ((model(x) - y) ** 2).mean(), len(x)

    def evaluate(self, model, split, limit=None) -> dict:
        x = torch.linspace(-1, 1, 8).reshape(4, 2)
        loss = float(((model(x) - x.sum(1, keepdim=True)) ** 2).mean())
        return {"loss": loss, "score": 1 / (1 + loss), "examples": 4}

    def describe(self) -> dict:
        return {"kind": self.kind}


class TinyTask(PlainTask):
    """The same task, naming what it counts, what its loss is and the figure to beat."""

    kind = "tiny"
    unit = "examples"
    loss_label = "squared error"
    monitor = ("score", "max")


def config(out, **kw) -> TrainConfig:
    defaults = dict(out=str(out), max_steps=12, eval_every=4, checkpoint_every=5,
                    warmup_steps=2, log_every=1, progress=False)  # fmt: skip
    return TrainConfig(**{**defaults, **kw})


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()]


# -- units and labels ----------------------------------------------------------------------------
@pytest.mark.parametrize("task, unit", [(TinyTask(), "examples"), (PlainTask(), "items")])
def test_the_progress_bar_counts_the_tasks_unit(tmp_path, capsys, task, unit):
    pytest.importorskip("tqdm")
    Trainer(task, config(tmp_path / "run", progress=True)).run()
    bar = capsys.readouterr().err
    assert f" {unit}/s" in bar
    assert "tok/s" not in bar


def test_config_json_says_what_the_log_counts(tmp_path):
    Trainer(TinyTask(), config(tmp_path / "a")).run()
    log = json.loads((tmp_path / "a" / CONFIG).read_text())["log"]
    assert log == {"unit": "examples", "loss_label": "squared error", "monitor": ["score", "max"]}
    Trainer(PlainTask(), config(tmp_path / "b")).run()
    log = json.loads((tmp_path / "b" / CONFIG).read_text())["log"]
    assert log == {"unit": "items", "loss_label": "loss", "monitor": ["loss", "min"]}


def test_every_task_names_its_unit_and_loss():
    from rnnkit.tasks.classify.task import ClassifyTask
    from rnnkit.tasks.forecast.task import ForecastTask
    from rnnkit.tasks.generate.task import GenerateTask
    from rnnkit.tasks.lm.task import LanguageModelTask
    from rnnkit.tasks.seq2seq.task import Seq2SeqTask

    assert (LanguageModelTask.unit, LanguageModelTask.loss_label) == ("tokens", "nats per token")
    assert Seq2SeqTask.unit == "target tokens"
    assert GenerateTask.unit == "tokens"
    assert ForecastTask.unit == "windows"
    assert ClassifyTask.loss_label == "cross-entropy (nats)"
    # classify and tag count different things, a forecast's loss depends on its quantiles
    tagger, classifier = object.__new__(ClassifyTask), object.__new__(ClassifyTask)
    tagger.aligned, classifier.aligned = True, False
    assert (tagger.unit, classifier.unit) == ("tokens", "examples")
    point, quantile = object.__new__(ForecastTask), object.__new__(ForecastTask)
    point.quantiles, quantile.quantiles = None, torch.tensor([0.1, 0.5, 0.9])
    assert point.loss_label.startswith("mean squared error")
    assert quantile.loss_label.startswith("pinball loss")


# -- the plot ------------------------------------------------------------------------------------
def test_the_plot_puts_each_validation_figure_beside_the_loss(tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    Trainer(TinyTask(), config(run)).run()
    assert (run / "loss.png").stat().st_size > 1000  # drawn at the end of the run
    fig = draw_run(run)
    labels = [ax.get_ylabel() for ax in fig.axes]
    # the count of examples scored is no figure of the model: no panel
    assert labels == ["squared error", "score"]
    loss_ax, score_ax = fig.axes
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    val = [r for r in records(run) if "val_loss" in r]
    validation = next(v for k, v in lines.items() if k.startswith("validation"))
    assert list(validation.get_ydata()) == [r["val_loss"] for r in val]
    assert list(score_ax.get_lines()[0].get_ydata()) == [r["val_score"] for r in val]
    best = max(val, key=lambda r: r["val_score"])["step"]
    assert f"best checkpoint (step {best})" in lines
    out = plot_run(run, tmp_path / "curves.png")
    assert out.stat().st_size > 1000


def test_the_plot_of_a_run_without_stored_labels_uses_plain_ones(tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "old"
    run.mkdir()
    lines = [
        {"step": 1, "loss": 2.0, "lr": 1e-3, "grad_norm": 1.0, "tokens": 10, "tokens_per_s": 5.0},
        {"step": 2, "loss": 1.5, "lr": 1e-3, "grad_norm": 1.0, "tokens": 20, "tokens_per_s": 5.0},
        {"step": 2, "val_loss": 1.7, "val_bpc": 1.7 / 0.6931, "val_unigram_loss": 3.0},
    ]
    (run / METRICS).write_text("".join(json.dumps(r) + "\n" for r in lines))
    fig = draw_run(run)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "bits per token (bpc)"]
    # a baseline's loss shares the loss's units: drawn in the loss panel
    assert any("unigram" in line.get_label() for line in fig.axes[0].get_lines())


def test_figure_series_keeps_measures_and_drops_counts_and_losses():
    recs = [
        {"step": 4, "val_loss": 1.0, "val_accuracy": 1.0, "val_tokens": 100, "val_x_loss": 2.0},
        {"step": 8, "val_loss": 0.9, "val_accuracy": 0.5, "val_tokens": 100, "val_per": {"a": 1}},
    ]
    assert figure_series(recs) == {"accuracy": [(4, 1.0), (8, 0.5)]}


def test_best_step_follows_the_monitor_and_breaks_ties_by_loss():
    recs = [
        {"step": 4, "val_loss": 1.0, "val_accuracy": 0.8},
        {"step": 8, "val_loss": 0.7, "val_accuracy": 0.8},
        {"step": 12, "val_loss": 0.5, "val_accuracy": 0.6},
    ]
    assert best_step(recs, ("accuracy", "max")) == 8
    assert best_step(recs, ("loss", "min")) == 12
    assert best_step([{"step": 1, "loss": 1.0}], ("loss", "min")) is None


# -- TensorBoard ---------------------------------------------------------------------------------
def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    ).EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def test_tensorboard_logs_what_metrics_jsonl_holds(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    Trainer(TinyTask(), config(run, tensorboard=True)).run()
    got = scalars(run)
    train = [r for r in records(run) if "loss" in r]
    val = [r for r in records(run) if "val_loss" in r]
    assert set(got) == {
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "train/examples_per_s",
        "val/loss",
        "val/score",
        "val/examples",
    }
    for tag, key, rows in (
        ("train/loss", "loss", train),
        ("train/lr", "lr", train),
        ("train/grad_norm", "grad_norm", train),
        ("train/examples_per_s", "tokens_per_s", train),
        ("val/loss", "val_loss", val),
        ("val/score", "val_score", val),
    ):
        assert [s for s, _ in got[tag]] == [r["step"] for r in rows], tag
        expected = torch.tensor([r[key] for r in rows], dtype=torch.float32)
        torch.testing.assert_close(torch.tensor([v for _, v in got[tag]]), expected)


def test_a_resumed_run_logs_each_step_once_to_tensorboard(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    # Ctrl-C inside step 8: the checkpoint of step 5 is kept, steps 6 and 7 were logged
    result = Trainer(TinyTask(interrupt_at=8), config(run, tensorboard=True)).run()
    assert result.interrupted and result.counters.step == 7
    assert [s for s, _ in scalars(run)["train/loss"]] == list(range(1, 8))
    Trainer(TinyTask(), config(run, tensorboard=True, resume=True)).run()
    got = scalars(run)["train/loss"]
    assert [s for s, _ in got] == list(range(1, 13))
    logged = [r["loss"] for r in records(run) if "loss" in r]
    torch.testing.assert_close(
        torch.tensor([v for _, v in got]), torch.tensor(logged, dtype=torch.float32)
    )


def test_tensorboard_may_be_switched_on_for_a_resume(tmp_path):
    pytest.importorskip("tensorboard")
    from rnnkit.training.runs import resume_train_config

    run = tmp_path / "run"
    Trainer(TinyTask(), config(run, max_steps=6)).run()
    cfg = resume_train_config(run, {"tensorboard": True, "max_steps": 10})
    assert cfg.tensorboard
    Trainer(TinyTask(), cfg).run()
    assert [s for s, _ in scalars(run)["train/loss"]] == list(range(7, 11))


def test_a_missing_tensorboard_is_named_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    run = tmp_path / "run"
    with pytest.raises(ImportError, match=r"pip install 'rnnkit\[tensorboard\]'"):
        Trainer(TinyTask(), config(run, tensorboard=True)).run()
    assert not (run / CONFIG).exists()


def test_the_tensorboard_flag_is_on_every_train_command(capsys):
    from rnnkit.cli.main import main

    with pytest.raises(SystemExit):
        main(["train", "lm", "-h"])
    assert "--tensorboard" in capsys.readouterr().out
