"""What every ``rnnkit train TASK`` shares: flag groups from the task's config dataclasses plus
the training flags, the configs rebuilt from them (none on ``--resume``, which reads them from the
run), and the one-line summary printed at the end."""

from __future__ import annotations

import argparse

from rnnkit.cli.dataclass_args import add_dataclass_flags, build_dataclass
from rnnkit.training.config import TrainConfig
from rnnkit.training.interrupts import exit_status
from rnnkit.training.trainer import RunResult


def add_train_groups(
    parser: argparse.ArgumentParser,
    groups: dict[str, type],
    *,
    from_run: tuple[str, ...] = ("data",),
) -> None:
    """One flag group per config dataclass (``{"data": DataConfig, ...}``), then ``training``.

    The fields in ``from_run`` are required to start a run but not to ``--resume`` one (the run
    stores them), so the parser leaves them optional and ``build_configs`` checks them.
    """
    for title, cls in groups.items():
        add_dataclass_flags(parser.add_argument_group(title), cls)
    add_dataclass_flags(parser.add_argument_group("training"), TrainConfig)
    for action in parser._actions:
        if action.dest in from_run:
            action.required = False


def build_configs(
    args, parser, classes: tuple[type, ...], *, from_run: tuple[str, ...] = ("data",), hint=""
) -> tuple[TrainConfig, tuple | None]:
    """The training config, and the task's configs (``None`` when resuming: the run has them)."""
    train_cfg = build_dataclass(TrainConfig, args, parser)
    if train_cfg.resume:
        return train_cfg, None
    for name in from_run:
        if getattr(args, name, None) is None:
            parser.error(f"--{name.replace('_', '-')} is required{hint if name == 'data' else ''}")
    return train_cfg, tuple(build_dataclass(cls, args, parser) for cls in classes)


def report(result: RunResult, *, count: str, best: str, tail: str = "") -> int:
    """Print how a run ended; the exit status (128 + the signal when interrupted: 130 after
    Ctrl-C, 143 after SIGTERM)."""
    c = result.counters
    best_text = (
        f"best validation {best} {c.best_val:.4f} at step {c.best_step}"
        if c.best_step >= 0
        else "no validation yet"
    )
    print(
        f"{'interrupted' if result.interrupted else 'done'}: {c.step} steps, {c.tokens:,} {count}, "
        f"{c.elapsed:.0f} s; {best_text}{tail}; run folder {result.run_dir}"
    )
    return exit_status(result.signal) if result.interrupted else 0
