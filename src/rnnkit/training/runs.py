"""What every task's runs share: reading a run's config (types checked), loading its weights,
and the settings of a resumed run.

A run folder holds ``config.json`` (the task's ``describe()`` and the training flags),
``checkpoint.safetensors`` (the last state) and ``best.safetensors`` (the best validation
weights); ``rnnkit.tasks.base.load_run`` rebuilds a run's model with these.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from rnnkit.training import checkpoint as ckpt
from rnnkit.training.config import TrainConfig, check_fields, parse_duration
from rnnkit.training.trainer import BEST, CONFIG, LAST, resolve_device


def read_run_config(
    run_dir: str | Path, kinds: tuple[str, ...] | None = None, what: str = ""
) -> dict:
    """A run's stored ``config.json``, checked to hold a task (of one of ``kinds``, when given;
    ``what`` names them)."""
    path = Path(run_dir) / CONFIG
    config = ckpt.read_json(path, "run config")
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(task, dict) or not isinstance(config.get("train", {}), dict):
        raise ckpt.CheckpointError(f"{path} is damaged: no 'task' settings")
    kind = task.get("kind")
    if kinds is not None and kind not in kinds:
        what = what or " or ".join(kinds)
        raise ckpt.CheckpointError(f"{run_dir} is not a {what} run ({path}: kind {kind!r})")
    return config


def load_weights(model: nn.Module, run_dir: str | Path, which: str, device: str) -> nn.Module:
    """Load a run's ``best`` (or, before any validation, ``last``) or ``last`` weights into
    ``model``; return it on ``device``, in eval mode."""
    if which not in ("best", "last"):
        raise ValueError(f"--checkpoint must be best or last, got {which!r}")
    run_dir = Path(run_dir)
    path = run_dir / (BEST if which == "best" else LAST)
    if which == "best" and not path.exists():
        path = run_dir / LAST  # no validation has run yet
    tensors, _ = ckpt.load(path)
    weights = ckpt.strip_prefix("model", tensors)
    bad = ckpt.nonfinite(weights)
    if bad:  # a run that diverged before non-finite weights were refused at saving
        raise ckpt.CheckpointError(
            f"{path} holds NaN or infinite weights ({', '.join(bad[:3])}); the run diverged: "
            "use the other --checkpoint or train again with a lower --lr"
        )
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise ckpt.CheckpointError(f"{path} does not fit the model in config.json: {e}") from e
    return model.to(resolve_device(device)).eval()


def run_configs(
    train_cfg, kind: str | tuple[str, ...], model_cls: type, data_cls: type, model_cfg, data_cfg
):
    """The model and data configs of a run about to train, and the stored task (or ``None``).

    On ``--resume`` they come from the run's ``config.json`` (which must be of ``kind``, one
    name or several) and the ones given are ignored; otherwise the given ones are needed.
    """
    stored = None
    if train_cfg.resume:
        kinds = (kind,) if isinstance(kind, str) else kind
        stored = read_run_config(train_cfg.out, kinds)["task"]
        source = str(Path(train_cfg.out) / CONFIG)
        model_cfg = stored_config(model_cls, stored.get("model"), source)
        data_cfg = stored_config(data_cls, stored.get("data"), source)
    if model_cfg is None or data_cfg is None:
        raise ValueError("--data is required to start a run (only --resume reads it from the run)")
    return model_cfg, data_cfg, stored


def stored_config(cls: type, values, source: str = "a run's config.json"):
    """A config dataclass from the values a run stored: fields renamed since by the class's
    ``upgrade``, types checked, so that a damaged file gets one line naming the field."""
    return build_checked(cls, _upgraded(cls, values), source)


def _upgraded(cls: type, values) -> dict:
    """A stored config's values, renamed by the class's ``upgrade`` where a field was renamed."""
    if not isinstance(values, dict):
        raise ckpt.CheckpointError(f"a run's stored {cls.__name__} is not an object: {values!r}")
    upgrade = getattr(cls, "upgrade", None)
    return upgrade(values) if upgrade is not None else values


# -- resuming: the run's own settings, and only a larger budget on top ---------------------------
RESUME_MAY_CHANGE = (
    "max_steps",
    "time_budget",
    "token_budget",
    "progress",
    "device",
    "tensorboard",
)
"""Training settings that a ``--resume`` may give: a larger budget, and what cannot change the
run's numbers (the progress bar, the device, a TensorBoard log)."""
BUDGETS = ("max_steps", "time_budget", "token_budget")


def stored_run_config(run_dir: str | Path) -> tuple[Path, dict]:
    """The ``config.json`` that a resumed run continues from, and where it is (a refit forecast
    stopped in its first part keeps it in ``select/``)."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not path.exists() and (run_dir / "select" / CONFIG).exists():
        path = run_dir / "select" / CONFIG
    if not path.exists():
        raise ckpt.CheckpointError(f"--resume: {run_dir} holds no run (no {CONFIG})")
    config = read_run_config(path.parent)
    if not isinstance(config.get("train"), dict):
        raise ckpt.CheckpointError(f"{path} is damaged: no 'train' settings")
    return path, config


def _budget_value(name: str, value):
    return parse_duration(value) if name == "time_budget" else value


def resume_train_config(
    run_dir: str | Path, changes: dict | None = None, stored: dict | None = None
) -> TrainConfig:
    """The training settings a run was started with, for ``--resume``, with ``changes``.

    ``changes`` may raise a budget (``max_steps``, ``time_budget``, ``token_budget``: at least
    the run's own) and set ``progress``, ``device`` or ``tensorboard``; any other setting that
    differs from the run's is refused with a message naming it, since it would silently change
    the run.
    ``stored``: the run's ``config.json`` when the caller has read it already.
    """
    if stored is None:
        _, stored = stored_run_config(run_dir)
    stored = dict(stored["train"])
    changes = dict(changes or {})
    for name, value in changes.items():
        if name in ("out", "resume") or value == stored.get(name):
            continue
        flag = "--" + name.replace("_", "-")
        if name not in RESUME_MAY_CHANGE:
            raise ValueError(
                f"{flag} {value} differs from the run's {stored.get(name)}: --resume continues "
                f"the run as it was started; only a larger budget, --progress, --device or "
                "--tensorboard may be given (start a new run with another --out to change it)"
            )
        old = stored.get(name)
        smaller = (
            name in BUDGETS
            and old is not None
            and value is not None
            and _budget_value(name, value) < _budget_value(name, old)
        )
        if smaller:
            raise ValueError(f"{flag} on --resume must be at least the run's {old}, got {value}")
    values = {**stored, **changes, "out": str(run_dir), "resume": True}
    return build_checked(TrainConfig, values, f"{Path(run_dir) / CONFIG}")


def record_budget(path: Path, config: dict, train_cfg: TrainConfig) -> None:
    """Write a resumed run's larger budget into its ``config.json`` at ``path`` (``config``, as
    read from there; the old budget is listed under ``budget_history``), so that the file always
    says what the run trains toward."""
    train = config["train"]
    old = {name: train.get(name) for name in BUDGETS}
    new = {name: getattr(train_cfg, name) for name in BUDGETS}
    if old == new:
        return
    config = {**config, "train": {**train, **new}}
    config["budget_history"] = [*config.get("budget_history", []), old]
    ckpt.atomic_write_json(path, config)


def build_checked(cls: type, values: dict, source: str):
    """``cls(**values)`` with each value's type checked first, so that a damaged or hand-written
    config gets one line naming the field, not a traceback from deep inside."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - {f.name for f in fields})
    if unknown:
        raise ValueError(f"{source}: unknown settings {unknown}")
    check_fields(cls, values, source=source)
    try:
        return cls(**values)
    except TypeError as e:
        raise ValueError(f"{source}: {e}") from e
