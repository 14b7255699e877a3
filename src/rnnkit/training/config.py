"""The flags every ``rnnkit train`` command shares, as one dataclass."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MAX_SEED = 2**63 - 1
"""The largest seed torch, numpy and random all take."""


def parse_duration(text: str | float | int | None) -> float | None:
    """``"90"``, ``"90s"``, ``"5m"``, ``"1.5h"`` -> seconds."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not m:
        raise ValueError(f"--time-budget must look like 300, 300s, 5m or 1.5h; got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def check_value_type(name: str, value, tp, source: str = "", literals: bool = True) -> None:
    """Raise ``ValueError`` (``"{source}: {name} must be int, got 'x'"``) unless ``value`` fits the
    annotation ``tp``: ``bool``, ``int``, ``float`` (an int will do), ``str``, ``None`` in an
    optional, a ``Literal``'s values (unless ``literals`` is false); other annotations are not
    checked."""
    where = f"{source}: " if source else ""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                check_value_type(name, value, option, source, literals)
                return
            except ValueError as e:
                errors.append(e)
        raise errors[0]
    if origin is typing.Literal:
        if literals and value not in args:
            raise ValueError(f"{where}{name} must be one of {list(args)}, got {value!r}")
        return
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp, True)
    if not ok:
        raise ValueError(f"{where}{name} must be {tp.__name__}, got {value!r}")


def check_fields(
    cls: type, values: dict, *, source: str = "", flags: bool = False, literals: bool = True
) -> None:
    """``check_value_type`` for each field of the dataclass ``cls`` present in ``values``,
    named as the flag (``flags``: ``--hidden-size``) or as the field (``hidden_size``)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.init and f.name in values and f.name in hints:
            name = "--" + f.name.replace("_", "-") if flags else f.name
            check_value_type(name, values[f.name], hints[f.name], source, literals)


def check_types(config) -> None:
    """Check every field of a config dataclass against its annotation (``check_fields``; the
    ``__post_init__`` words its own message for a ``Literal``), so that a config built from a
    damaged file fails with one line naming the flag, not with a ``TypeError`` deep inside."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    check_fields(type(config), values, flags=True, literals=False)


def check_finite(flag: str, value: float) -> None:
    """``--lr nan`` and the like pass every ``<``/``>`` check (NaN compares false), so they are
    refused first."""
    if not math.isfinite(value):
        raise ValueError(f"{flag} must be a finite number, got {value}")


def check_out_folder(flag: str, path: str) -> None:
    """Refuse an output folder that is empty or lies under an existing file, before anything is
    written (the nearest existing part of the path must be a folder)."""
    if not str(path).strip():
        raise ValueError(f"{flag} must name a folder, got {path!r}")
    for part in (Path(path), *Path(path).parents):
        if part.exists():
            if not part.is_dir():
                raise ValueError(f"{flag} {path}: {part} is a file, not a folder")
            return


@dataclass(kw_only=True)
class TrainConfig:
    """How to train: budgets, optimiser, schedule, evaluation, checkpoints."""

    out: str
    """Run folder: config, checkpoints, metrics log and plots go here."""
    max_steps: int | None = None
    """Stop after this many optimiser steps (with no budget at all given: the task's default,
    5000 steps for most; classify trains up to 20000, stopping early after 8 evaluations without
    a better validation accuracy)."""
    time_budget: str | None = None
    """Stop after this much training time: seconds, or with a unit (300s, 5m, 1.5h)."""
    token_budget: int | None = None
    """Stop after this many training tokens (or items, for non-sequence tasks)."""
    seed: int = 0
    """Seed for initialisation, dropout and sampling: the same seed gives the same run."""
    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (CUDA when present)."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint (same config)."""
    batch_size: int = 32
    """Sequences per batch."""
    lr: float = 2e-3
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW weight decay, applied to weight matrices only."""
    warmup_steps: int = 100
    """Steps of linear learning-rate warm-up."""
    min_lr_ratio: float = 0.1
    """The cosine decay ends at lr * min_lr_ratio when the budget is spent."""
    grad_clip: float = 1.0
    """Clip the gradient's global norm to this (0 turns clipping off)."""
    eval_every: int = 250
    """Validate every this many steps (and at the end)."""
    eval_max_tokens: int | None = 500_000
    """Score at most this many validation tokens per evaluation (None: all of them)."""
    patience: int | None = None
    """Stop early after this many evaluations without a better validation loss."""
    checkpoint_every: int = 250
    """Save the last checkpoint every this many steps (and at the end or on Ctrl-C)."""
    log_every: int = 10
    """Append training metrics to metrics.jsonl every this many steps."""
    amp: bool = True
    """Mixed precision (bfloat16 autocast) on CUDA; ignored on the CPU."""
    progress: bool = True
    """Show a progress bar."""
    nan_policy: Literal["stop", "skip"] = "stop"
    """On a non-finite training loss or gradient: stop (the last checkpoint is kept), or skip
    that batch's update (the run stops after 10 skips in a row)."""
    tensorboard: bool = False
    """Also log the training and validation figures to RUN/tensorboard/ for TensorBoard
    (pip install 'rnnkit[tensorboard]')."""

    def __post_init__(self) -> None:
        check_types(self)
        check_out_folder("--out", self.out)
        self.time_budget_s = parse_duration(self.time_budget)
        if self.time_budget_s is not None:
            check_finite("--time-budget", self.time_budget_s)
        for flag, value in (("--max-steps", self.max_steps), ("--token-budget", self.token_budget)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"--time-budget must be positive, got {self.time_budget!r}")
        # with no budget at all, the trainer gives the task's own (``Task.default_budget``)
        # where it has one, and 5,000 steps otherwise; the run stores the budget it used
        self.budget_given = not (
            self.max_steps is None and self.time_budget_s is None and self.token_budget is None
        )
        if not self.budget_given:
            self.max_steps = 5000
        for flag, value in (
            ("--lr", self.lr),
            ("--weight-decay", self.weight_decay),
            ("--min-lr-ratio", self.min_lr_ratio),
            ("--grad-clip", self.grad_clip),
        ):
            check_finite(flag, value)
        checks = (
            ("--batch-size", self.batch_size, 1),
            ("--eval-every", self.eval_every, 1),
            ("--checkpoint-every", self.checkpoint_every, 1),
            ("--log-every", self.log_every, 1),
            ("--warmup-steps", self.warmup_steps, 0),
            ("--weight-decay", self.weight_decay, 0),
        )
        for flag, value, low in checks:
            if value < low:
                raise ValueError(f"{flag} must be >= {low}, got {value}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"--seed must lie in [0, 2**63 - 1], got {self.seed}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"--min-lr-ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip < 0:
            raise ValueError(f"--grad-clip must be >= 0, got {self.grad_clip}")
        if self.nan_policy not in ("stop", "skip"):
            raise ValueError(f"--nan-policy must be stop or skip, got {self.nan_policy!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"--patience must be >= 1, got {self.patience}")
