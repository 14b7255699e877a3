"""Checkpoints: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint is one ``.safetensors`` file holding the model weights (``model.*``), and for the
last checkpoint of a run also the optimizer's tensors (``optim.*``), the RNG states (``rng.*``)
and whatever state the task carries between batches (``carry.*``). Its string metadata holds
JSON: the trainer's counters and the optimizer's non-tensor settings. Nothing is unpickled on
load, so a checkpoint from anywhere is safe to open.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
old file: a crash mid-write leaves the last good checkpoint as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or does not fit the model."""


def _safetensors():
    try:
        import safetensors.torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("checkpoints need safetensors: pip install 'rnnkit[train]'") from e
    return safetensors.torch


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path, what: str = "file") -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{what} not found: {path}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{what} {path} is corrupt (not valid JSON): {e}") from e


def save(path: Path, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Save tensors and JSON-able metadata as one safetensors file, atomically."""
    st = _safetensors()
    # clone: safetensors refuses tensors that share memory (tied or viewed weights)
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st.save(tensors, metadata={"rnnkit": json.dumps(meta)}))


def load(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load a checkpoint's tensors (on the CPU) and metadata; a clear error if it is damaged."""
    st = _safetensors()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        raw = path.read_bytes()
        tensors = st.load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get("rnnkit", "{}"))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated and cannot be read ({e}); "
            "restore it from a copy, or start the run again without --resume"
        ) from e
    return tensors, meta


def with_prefix(prefix: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def strip_prefix(prefix: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """An optimizer's state as flat tensors plus JSON (its param groups and scalar state)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, Tensor):
                tensors[f"{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
