"""The task registry: a task is one package and one registry line, and the CLI follows it.

A toy task (the parity of a bit string, many-to-one) is written as a package in a temporary
folder, outside rnnkit, and registered with one call; then ``rnnkit train toy``, ``evaluate``,
``predict`` and ``--resume`` work through the command line with no other change.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from rnnkit.cli.main import main
from rnnkit.tasks import _LOADED, _PACKAGES, get_task, register_task, task_names
from rnnkit.tasks.base import load_run

TOY_TASK = '''
"""A toy task: the parity of a random bit string (many-to-one)."""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from rnnkit.architectures import ManyToOne
from rnnkit.tasks.base import Loaded, TaskSpec, Verb, load_run
from rnnkit.tasks.network_config import check_network
from rnnkit.training.runs import run_configs
from rnnkit.training.task import Task
from rnnkit.training.trainer import Trainer


@dataclass(kw_only=True)
class ToyModelConfig:
    cell: str = "gru"
    """Recurrent cell: {cells}."""
    hidden_size: int = 16
    """Hidden units."""
    num_layers: int = 1
    """Stacked layers."""
    dropout: float = 0.0
    """Dropout between layers."""

    def __post_init__(self):
        check_network(self, ("hidden_size", "num_layers"))


@dataclass(kw_only=True)
class ToyDataConfig:
    data: str = "parity"
    """The toy data (only parity)."""
    length: int = 6
    """Bits per string."""


def build(cfg):
    return ManyToOne(2, input_size=1, cell=cfg.cell, hidden_size=cfg.hidden_size)


class ParityTask(Task):
    kind = "toy"
    unit = "strings"
    monitor = ("accuracy", "max")

    def __init__(self, model_cfg, data_cfg, batch_size):
        self.model_cfg, self.data_cfg, self.batch_size = model_cfg, data_cfg, batch_size
        g = torch.Generator().manual_seed(1)
        self.val = torch.randint(0, 2, (256, data_cfg.length), generator=g).float()

    def build_model(self):
        return build(self.model_cfg)

    def train_batch(self, step):
        g = torch.Generator().manual_seed(1000 + step)
        return torch.randint(0, 2, (self.batch_size, self.data_cfg.length), generator=g).float()

    def batch_loss(self, model, x):
        y = x.sum(1).long() % 2
        return F.cross_entropy(model(x.unsqueeze(-1)), y), len(x)

    def evaluate(self, model, split, limit=None):
        y = self.val.sum(1).long() % 2
        logits = model(self.val.unsqueeze(-1))
        acc = (logits.argmax(-1) == y).float().mean().item()
        return {"loss": F.cross_entropy(logits, y).item(), "accuracy": acc}

    def describe(self):
        return {"kind": self.kind, "model": asdict(self.model_cfg), "data": asdict(self.data_cfg),
                "batch_size": self.batch_size}


def train(model_cfg, data_cfg, train_cfg):
    model_cfg, data_cfg, _ = run_configs(
        train_cfg, "toy", ToyModelConfig, ToyDataConfig, model_cfg, data_cfg
    )
    return Trainer(ParityTask(model_cfg, data_cfg, train_cfg.batch_size), train_cfg).run()


def rebuild(task):
    return Loaded(build(ToyModelConfig(**task["model"])))


@dataclass(kw_only=True)
class PredictOptions:
    bits: str = "0110"
    """The bit string to judge."""


def predict(run_dir, *, bits, which="best", device="cpu"):
    run = load_run(run_dir, which, device)
    x = torch.tensor([[float(b) for b in bits]]).unsqueeze(-1)
    return {"bits": bits, "parity": int(run.model(x).argmax(-1))}


def evaluate(run_dir, *, which="best", device="cpu"):
    run = load_run(run_dir, which, device)
    task = ParityTask(ToyModelConfig(**run.task["model"]), ToyDataConfig(**run.task["data"]), 8)
    return task.evaluate(run.model, "val")


SPEC = TaskSpec(
    name="toy",
    help="the parity of a bit string",
    configs={"model": ToyModelConfig, "data": ToyDataConfig},
    train=train,
    rebuild=rebuild,
    verbs={
        "evaluate": Verb(evaluate, None, lambda m, o: f"accuracy {m['accuracy']:.3f}"),
        "predict": Verb(predict, PredictOptions, lambda r, o: f"{r['bits']} -> {r['parity']}"),
    },
    from_run=(),
    best="accuracy",
)
'''


@pytest.fixture()
def toy_task(tmp_path, monkeypatch):
    package = tmp_path / "toy_parity"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(TOY_TASK))
    monkeypatch.syspath_prepend(str(tmp_path))
    register_task("toy", "toy_parity")  # the one line
    yield
    _PACKAGES.pop("toy", None)
    _LOADED.pop("toy", None)
    sys.modules.pop("toy_parity", None)


def test_a_registered_task_gets_every_verb_of_the_command_line(tmp_path, toy_task, capsys):
    assert "toy" in task_names() and get_task("toy").help == "the parity of a bit string"
    run = tmp_path / "run"
    args = ["train", "toy", "--out", str(run), "--cell", "lnlstm", "--length", "4",
            "--max-steps", "60", "--lr", "0.02", "--warmup-steps", "0", "--batch-size", "32",
            "--eval-every", "20", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "60 steps" in out and "strings" in out  # the spec's unit in the end-of-run line
    config = json.loads((run / "config.json").read_text())
    assert config["task"]["kind"] == "toy" and config["task"]["model"]["cell"] == "lnlstm"
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.5
    assert main(["predict", str(run), "--bits", "0111"]) == 0
    assert capsys.readouterr().out.startswith("0111 -> ")
    assert main(["sample", str(run)]) == 2  # a verb the task does not serve: one clear line
    assert "a toy run has no 'sample'" in capsys.readouterr().err
    assert main(["train", "toy", "--out", str(run), "--resume", "--max-steps", "80",
                 "--no-progress"]) == 0  # fmt: skip
    assert json.loads((run / "config.json").read_text())["train"]["max_steps"] == 80
    assert isinstance(load_run(run).model.rnn.cells[0].ln_c.weight.sum().item(), float)


def test_an_unknown_task_is_one_clear_error():
    with pytest.raises(ValueError, match="no task 'nope'; the tasks are lm, classify"):
        get_task("nope")
