"""Conditional generation's run verbs as the command line calls them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rnnkit.decoding import SamplingConfig
from rnnkit.tasks.generate import run
from rnnkit.training.runs import read_run_config


@dataclass(kw_only=True)
class EvaluateOptions:
    """What ``rnnkit evaluate`` scores for a generate run (its own table's splits only)."""

    split: Literal["train", "val", "test"] = "test"
    """Which part of the run's table to score, cut as in training."""


def show_evaluate(m: dict, options: EvaluateOptions) -> str:
    return "\n".join(
        [
            f"{'data':<22}{m['data']}",
            f"{'checkpoint':<22}{m['checkpoint']}",
            f"{'rows scored':<22}{m['items']:,}",
            f"{'model':<22}{m['loss']:.4f} nats/token",
            f"{'unigram baseline':<22}{m['unigram_loss']:.4f} nats/token",
        ]
    )


@dataclass(kw_only=True)
class SampleOptions:
    """What ``rnnkit sample`` generates from a generate run."""

    condition: str | None = None
    """Generate for this condition value (required; the error lists the run's values)."""
    num_samples: int = 10
    """How many to generate."""
    max_length: int = 50
    """The most tokens per sample."""
    beam: int = 1
    """Beam width (1: sample, or greedy with --argmax)."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


def sample(
    run_dir: str | Path,
    *,
    condition: str | None = None,
    num_samples: int = 10,
    max_length: int = 50,
    beam: int = 1,
    sampling: SamplingConfig | None = None,
    which="best",
    device="cpu",
) -> list[str]:
    if condition is None:  # the values are in config.json: no need to load the model
        conditions = read_run_config(run_dir, ("generate",))["task"]["conditions"]
        raise ValueError(f"--condition is required; this run knows: {', '.join(conditions)}")
    return run.sample(
        run_dir,
        condition,
        num=num_samples,
        sampling=None if beam > 1 else sampling,
        beam=beam,
        max_length=max_length,
        which=which,
        device=device,
    )


def show_sample(texts: list[str], options: SampleOptions) -> str:
    return "\n".join(texts)
