"""The trainer's choice of the best checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnkit.training import checkpoint as ckpt
from rnnkit.training.config import TrainConfig
from rnnkit.training.trainer import BEST, Trainer


class ScriptedTask:
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

    def evaluate(self, model, split, max_tokens=None) -> dict:
        value = self.script.pop(0)
        return {"loss": value, "accuracy": value}

    def carry(self) -> dict:
        return {}

    def restore_carry(self, tensors) -> None:
        pass

    def describe(self) -> dict:
        return {"kind": self.kind}


@pytest.mark.parametrize(
    ("monitor", "script", "best_step"),
    [
        (None, [math.nan, 2.0, 1.0, 3.0], 3),
        (("accuracy", "max"), [math.nan, 0.5, 0.7, 0.6], 3),
    ],
)
def test_a_nan_first_validation_never_blocks_a_later_best(tmp_path, monitor, script, best_step):
    cfg = TrainConfig(out=str(tmp_path / "run"), max_steps=4, eval_every=1, warmup_steps=0,
                      progress=False, patience=2)  # fmt: skip
    result = Trainer(ScriptedTask(script, monitor), cfg).run()
    assert result.counters.best_step == best_step
    assert ckpt.load(tmp_path / "run" / BEST)[1]["step"] == best_step
