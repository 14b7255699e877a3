"""A conditional-generation run from start to finish: train, load, sample, evaluate.

Each function is one call a Python user can make too, for example::

    from rnnkit.tasks.generate.run import train_generate, sample
    train_generate(
        GenerateModelConfig(),
        GenerateDataConfig(data="wordfreq", condition_col="language", target_col="word"),
        TrainConfig(out="runs/words", time_budget="10m"),
    )
    sample("runs/words", "fi", num=10, sampling=SamplingConfig(temperature=0.8))
"""

from __future__ import annotations

from pathlib import Path

import torch

from rnnkit.architectures.one_to_many import OneToMany
from rnnkit.decoding import SamplingConfig, generate
from rnnkit.tasks.base import Loaded, load_run
from rnnkit.tasks.generate.task import (
    GenerateDataConfig,
    GenerateModelConfig,
    GenerateTask,
    build_generator,
    condition_index,
    read_table,
)
from rnnkit.text.tokens import TokenVocab
from rnnkit.training import runs
from rnnkit.training.config import TrainConfig
from rnnkit.training.runs import stored_config
from rnnkit.training.trainer import RunResult, Trainer, resolve_device


def make_task(
    model_cfg: GenerateModelConfig,
    data_cfg: GenerateDataConfig,
    *,
    batch_size: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    stored: dict | None = None,
) -> GenerateTask:
    """The task of a new run, or (with ``stored``, a run's config) of an existing one."""
    rows = read_table(data_cfg.data, data_cfg.condition_col, data_cfg.target_col)
    vocab = conditions = None
    if stored is not None:
        vocab, conditions = TokenVocab.from_json(stored["vocab"]), list(stored["conditions"])
    return GenerateTask(
        model_cfg,
        data_cfg,
        rows,
        batch_size=batch_size,
        seed=seed,
        device=device,
        vocab=vocab,
        conditions=conditions,
    )


def train_generate(
    model_cfg: GenerateModelConfig | None,
    data_cfg: GenerateDataConfig | None,
    train_cfg: TrainConfig,
    *,
    callbacks=(),
) -> RunResult:
    """Train (or with ``train_cfg.resume``, continue) a conditional generator."""
    model_cfg, data_cfg, stored = runs.run_configs(
        train_cfg, "generate", GenerateModelConfig, GenerateDataConfig, model_cfg, data_cfg
    )
    task = make_task(
        model_cfg,
        data_cfg,
        batch_size=train_cfg.batch_size,
        seed=train_cfg.seed,
        device=resolve_device(train_cfg.device),
        stored=stored,
    )
    return Trainer(task, train_cfg, callbacks).run()


def rebuild(task: dict) -> Loaded:
    """A generate run's (untrained) model, vocabulary and condition values, from its task."""
    vocab = TokenVocab.from_json(task["vocab"])
    conditions = list(task["conditions"])
    model = build_generator(
        len(vocab), len(conditions), stored_config(GenerateModelConfig, task["model"])
    )
    return Loaded(model, {"vocab": vocab, "conditions": conditions})


def load_model(
    run_dir: str | Path, which: str = "best", device: str = "cpu"
) -> tuple[OneToMany, TokenVocab, list[str], dict]:
    """A run's model (``best`` or ``last`` weights), vocabulary, condition values and task."""
    run = load_run(run_dir, which, device, kinds=("generate",))
    return run.model, run.extra["vocab"], run.extra["conditions"], run.task


def generate_texts(
    model: OneToMany,
    vocab: TokenVocab,
    conditions: list[str],
    condition: str,
    *,
    num: int = 10,
    sampling: SamplingConfig | None = None,
    beam: int = 1,
    max_length: int = 50,
) -> list[str]:
    """``num`` sequences for one condition value (sampled, or greedy/beam: then all equal)."""
    if num < 1:
        raise ValueError(f"--num-samples must be >= 1, got {num}")
    index = condition_index(conditions, condition)
    device = next(model.parameters()).device
    batch = torch.full((num,), index, dtype=torch.long, device=device)
    ids = generate(model, batch, sampling=sampling, beam=beam, max_length=max_length)
    return [vocab.decode(seq) for seq in ids]


def sample(
    run_dir: str | Path,
    condition: str,
    *,
    num: int = 10,
    sampling: SamplingConfig | None = None,
    beam: int = 1,
    max_length: int = 50,
    which: str = "best",
    device: str = "cpu",
) -> list[str]:
    """Generate ``num`` sequences for ``condition`` with a trained run."""
    model, vocab, conditions, _ = load_model(run_dir, which, device)
    return generate_texts(
        model,
        vocab,
        conditions,
        condition,
        num=num,
        sampling=sampling,
        beam=beam,
        max_length=max_length,
    )


def evaluate_run(
    run_dir: str | Path, *, split: str = "test", which: str = "best", device: str = "cpu"
) -> dict:
    """Loss per token of a run's model on a split of its table, beside the unigram baseline."""
    model, _, _, task = load_model(run_dir, which, device)
    gen_task = make_task(
        stored_config(GenerateModelConfig, task["model"]),
        stored_config(GenerateDataConfig, task["data"]),
        batch_size=task["batch_size"],
        stored=task,
    )
    if split not in gen_task.splits:
        raise ValueError(f"--split must be train, val or test, got {split!r}")
    return {
        "data": f"{task['data']['data']} [{split}]",
        "checkpoint": which,
        **gen_task.evaluate(model, split),
    }
