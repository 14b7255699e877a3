"""What a task package declares, and the run lifecycle written once.

A task is one package under ``rnnkit/tasks/`` whose ``__init__`` exposes ``SPEC``, a
``TaskSpec``: its configs (the ``train`` flags are generated from them), the call that trains
it, the call that rebuilds a trained model from the run's ``config.json``, and the run verbs it
serves (``evaluate``, ``predict``, ``sample``...), each a library call with an options dataclass
(the verb's flags are generated from it) and a function that turns its result into text. The
CLI is generated from these; a Python user makes the same calls.

The lifecycle of a finished run (read ``config.json``, find its task, rebuild the model, load
the weights) is ``load_run``, for every task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from rnnkit.training import checkpoint as ckpt
from rnnkit.training.runs import load_weights, read_run_config
from rnnkit.training.trainer import CONFIG, RunResult


@dataclass(frozen=True)
class Verb:
    """One run verb of a task.

    Attributes:
        run: ``run(run_dir, options, *, which, device)``: the library call; returns a result.
        options: the dataclass of the verb's own settings (its flags), or ``None``.
        show: ``show(result, options) -> str``: the result as the CLI prints it (``None``: the
            verb printed as it went, a streamed sample say).
        stream: the call takes ``write=`` and prints as it goes (a sample, say).
        loads: the call reads the run's weights (and so takes ``which=`` and ``device=``); a
            backtest, which trains afresh, does not.
        show_only: options that only change the printed form (``show`` reads them); they are
            not passed to ``run``.

    The CLI calls ``run(run_dir, **fields_of(options), which=..., device=...)``: the options'
    fields (less ``show_only``) are the call's keyword arguments, so a Python user makes the
    same call.
    """

    run: Callable[..., Any]
    options: type | None = None
    show: Callable[[Any, Any], str] | None = None
    stream: bool = False
    loads: bool = True
    show_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskSpec:
    """A task, as the registry and the CLI know it.

    Attributes:
        name: the registered name (``rnnkit train NAME``), stored in runs as ``kind``.
        help: one line.
        configs: ``{section: dataclass}``; the section is the key the run's ``config.json``
            stores it under. Every task has ``model`` and ``data``; others are its own.
        train: ``train(model_cfg, data_cfg, train_cfg, **other_sections) -> RunResult`` (the
            configs are ``None`` on ``--resume``: the run has them).
        rebuild: ``rebuild(stored_task: dict) -> Loaded``: the model of a run (untrained) and
            what its verbs need beside it (vocabulary, classes, scalers), from ``config.json``.
        verbs: ``{"evaluate": Verb, ...}``.
        summary: ``summary(result) -> str``: what the end-of-training line adds (last
            validation accuracy, say); optional.
        from_run: fields needed to start a run but stored in it (not needed to resume).
        hint: added to the error for a missing ``--data``.
        epilogue: ``epilogue(result) -> str``: lines printed after the end-of-training line.
        best: how the monitored validation figure reads there (``loss (nats)``).
        titles: flag-group titles for sections whose name alone says too little.
    """

    name: str
    help: str
    configs: dict[str, type]
    train: Callable[..., RunResult]
    rebuild: Callable[[dict], Loaded]
    verbs: dict[str, Verb] = field(default_factory=dict)
    summary: Callable[[RunResult], str] | None = None
    from_run: tuple[str, ...] = ("data",)
    hint: str = ""
    epilogue: Callable[[RunResult], str] | None = None
    best: str = "loss"
    titles: dict[str, str] = field(default_factory=dict)


@dataclass
class Loaded:
    """A run's model and what goes with it; ``extra`` holds the task's own pieces."""

    model: nn.Module
    extra: dict[str, Any] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    """The run's whole ``config.json``."""

    @property
    def task(self) -> dict:
        """The run's stored task (``config.json``'s ``task``)."""
        return self.config["task"]


def load_run(
    run_dir: str | Path,
    which: str = "best",
    device: str = "cpu",
    *,
    kinds: tuple[str, ...] | None = None,
) -> Loaded:
    """Rebuild a run's model from its ``config.json`` and load its ``best`` or ``last`` weights,
    on ``device`` in eval mode: the one lifecycle behind every task's run verbs."""
    from rnnkit.tasks import get_task, task_names

    config = read_run_config(run_dir, kinds or task_names())
    spec = get_task(config["task"]["kind"])
    try:
        loaded = spec.rebuild(config["task"])
    except (KeyError, TypeError) as e:
        raise ckpt.CheckpointError(
            f"{Path(run_dir) / CONFIG} is damaged or from another version: {type(e).__name__}: {e}"
        ) from e
    loaded.model = load_weights(loaded.model, run_dir, which, device)
    loaded.config = config
    return loaded
