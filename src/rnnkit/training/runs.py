"""What every task's runs share: reading a run's config and loading its weights.

A run folder holds ``config.json`` (the task's ``describe()`` and the training flags),
``checkpoint.safetensors`` (the last state) and ``best.safetensors`` (the best validation
weights); each task's ``*_runs.py`` rebuilds its model from the config and calls these.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from rnnkit.training import checkpoint as ckpt
from rnnkit.training.trainer import BEST, CONFIG, LAST, resolve_device


def read_run_config(run_dir: str | Path, kinds: tuple[str, ...], what: str) -> dict:
    """A run's stored ``config.json``, checked to be of one of ``kinds`` (``what`` names them)."""
    config = ckpt.read_json(Path(run_dir) / CONFIG, "run config")
    if config.get("task", {}).get("kind") not in kinds:
        raise ckpt.CheckpointError(f"{run_dir} is not a {what} run (config.json)")
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
    try:
        model.load_state_dict(ckpt.strip_prefix("model", tensors))
    except RuntimeError as e:
        raise ckpt.CheckpointError(f"{path} does not fit the model in config.json: {e}") from e
    return model.to(resolve_device(device)).eval()


def run_configs(train_cfg, read_config, model_cls: type, data_cls: type, model_cfg, data_cfg):
    """The model and data configs of a run about to train, and the stored task (or ``None``).

    On ``--resume`` they come from the run's ``config.json`` (``read_config(run_dir)``) and the
    ones given are ignored; otherwise the given ones are needed.
    """
    stored = None
    if train_cfg.resume:
        stored = read_config(train_cfg.out)["task"]
        model_cfg, data_cfg = model_cls(**stored["model"]), data_cls(**stored["data"])
    if model_cfg is None or data_cfg is None:
        raise ValueError("--data is required to start a run (only --resume reads it from the run)")
    return model_cfg, data_cfg, stored
