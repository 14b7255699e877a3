"""What every ``rnnkit train TASK`` shares: flag groups from the task's config dataclasses plus
the training flags, ``--config FILE``, the configs rebuilt from them (on ``--resume``, from the
run itself), and the one-line summary printed at the end.

Where a setting comes from, last wins: the dataclass default, then ``--config FILE`` (a run's
``config.json`` or a JSON/YAML file of the same fields), then the flags on the command line. A
``--resume`` takes every setting from the run; beside it only a larger budget, ``--progress``
and ``--device`` may be given, and any other flag that differs from the run's is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rnnkit.cli.dataclass_args import add_dataclass_flags, given_values
from rnnkit.training import runs
from rnnkit.training.config import TrainConfig
from rnnkit.training.interrupts import exit_status
from rnnkit.training.trainer import RunResult


def add_train_groups(
    parser: argparse.ArgumentParser,
    groups: dict[str, type],
    *,
    titles: dict[str, str] | None = None,
    from_run: tuple[str, ...] = ("data",),
) -> None:
    """One flag group per config dataclass (``{"data": DataConfig, ...}``, keyed by the name the
    run's ``config.json`` stores it under), then ``training`` and ``--config``.

    The fields in ``from_run`` are required to start a run but not to ``--resume`` one (the run
    stores them), so the parser leaves them optional and ``build_configs`` checks them.
    """
    titles = titles or {}
    for name, cls in groups.items():
        add_dataclass_flags(parser.add_argument_group(titles.get(name, name)), cls)
    add_dataclass_flags(parser.add_argument_group("training"), TrainConfig)
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="start from the settings in FILE: a run's config.json, or a JSON or YAML file of "
        "the same fields (flat, or under model/data/train); flags given here override it",
    )
    for action in parser._actions:
        if action.dest in from_run:
            action.required = False


def read_config_file(path: str, kind: str) -> tuple[dict[str, dict], bool]:
    """A config file's settings by section (``model``, ``data``, ``train``, ...; a flat file's
    fields under ``""``), and whether it is a run's ``config.json`` (which must be of the task
    being trained)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--config {path}: cannot read it ({e})") from None
    if file.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            raise ImportError("--config: YAML files need PyYAML: pip install 'rnnkit[yaml]'") from e
        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"--config {path}: not valid YAML ({e})") from None
    else:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"--config {path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"--config {path}: expected an object of settings")
    if isinstance(obj.get("task"), dict) and "train" in obj:  # a run's config.json
        stored_kind = obj["task"].get("kind")
        if stored_kind != kind:
            raise ValueError(f"--config {path}: a {stored_kind!r} run's settings, not {kind!r}")
        sections = {k: v for k, v in obj["task"].items() if isinstance(v, dict)}
        return {**sections, "train": obj["train"]}, True
    flat = {k: v for k, v in obj.items() if not isinstance(v, dict)}
    return {**{k: v for k, v in obj.items() if isinstance(v, dict)}, "": flat}, False


def build_configs(
    args, parser, groups: dict[str, type], *, from_run: tuple[str, ...] = ("data",), hint=""
) -> tuple[TrainConfig, dict | None]:
    """The training config, and the task's configs by section (``groups``, as given to
    ``add_train_groups``; ``None`` on ``--resume``: the run has them).

    Errors name the flag (or the config file's field) and the bad value.
    """
    sections: dict[str, type] = {**groups, "train": TrainConfig}
    given = {name: given_values(cls, args) for name, cls in sections.items()}
    if given["train"].get("resume"):
        return _resume(args, given, sections), None
    base = _from_file(args.config, args.task, sections) if args.config is not None else {}
    source = f"--config {args.config}" if args.config is not None else "flags"
    configs = {}
    for name, cls in sections.items():
        values = {**base.get(name, {}), **given[name]}
        for field in from_run:
            if field in _field_names(cls) and values.get(field) is None:
                hint_text = hint if field == "data" else ""
                parser.error(f"--{field.replace('_', '-')} is required{hint_text}")
        try:
            configs[name] = runs.build_checked(cls, values, source)
        except (ValueError, TypeError) as e:
            if args.config is not None:  # not a usage error: one line, no usage text
                raise ValueError(str(e)) from None
            parser.error(str(e))
    return configs.pop("train"), configs


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def _from_file(path: str, kind: str, sections: dict[str, type]) -> dict[str, dict]:
    """The settings of ``--config FILE`` for each section; an unknown one is an error (a run's
    config.json also holds what the run learnt, its vocabulary say: that is not a setting)."""
    from_file, is_run = read_config_file(path, kind)
    flat = from_file.pop("", {})
    known = set().union(*(_field_names(cls) for cls in sections.values()))
    if not is_run:
        stray = sorted((set(flat) - known) | (set(from_file) - set(sections)))
        stray += sorted(
            f"{s}.{k}"
            for s, v in from_file.items()
            if s in sections
            for k in v
            if k not in _field_names(sections[s])
        )
        if stray:
            raise ValueError(f"--config {path}: unknown settings {stray}")
    base = {}
    for name, cls in sections.items():
        fields = _field_names(cls)
        values = {k: v for k, v in flat.items() if k in fields}
        values.update({k: v for k, v in from_file.get(name, {}).items() if k in fields})
        base[name] = values
    base["train"].pop("resume", None)
    base["train"].pop("out", None)  # a new run goes where --out says
    return base


def _resume(args, given: dict[str, dict], sections: dict[str, type]) -> TrainConfig:
    """The run's own training settings, a larger budget on top; a flag that would change the
    run's model or data is refused, naming it."""
    if args.config is not None:
        raise ValueError("--config starts a run; --resume continues one from its own config.json")
    out = given["train"]["out"]
    path, stored = runs.stored_run_config(out)
    for name, values in given.items():
        if name == "train":
            continue
        have = stored.get("task", {}).get(name, {})
        for field, value in values.items():
            if field in have and _same(field, value, have[field]):
                continue
            flag = "--" + field.replace("_", "-")
            raise ValueError(
                f"{flag} {value} differs from the run's {have.get(field)}: --resume continues the "
                "run as it was started (start a new run with another --out to change it)"
            )
    train_cfg = runs.resume_train_config(out, given["train"], stored)
    runs.record_budget(path, stored, train_cfg)
    return train_cfg


def _same(field: str, given, stored) -> bool:
    """A flag repeated on ``--resume`` as the run has it (a path may be spelt another way)."""
    from rnnkit.cells.registry import canonical_cell

    if given == stored:
        return True
    try:
        if field == "cell":
            return canonical_cell(given) == stored
        if isinstance(given, str) and isinstance(stored, str):
            return Path(given).resolve() == Path(stored).resolve()
    except (OSError, ValueError):
        pass
    return False


def report(result: RunResult, *, best: str, tail: str = "", count: str | None = None) -> int:
    """Print how a run ended (``count``: what its counter counts, by default the task's unit);
    the exit status (128 + the signal when interrupted: 130 after Ctrl-C, 143 after SIGTERM)."""
    c = result.counters
    count = count or result.unit
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
