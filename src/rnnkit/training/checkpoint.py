"""Checkpoints: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint is one ``.safetensors`` file holding the model weights (``model.*``), and for the
last checkpoint of a run also the optimizer's tensors (``optim.*``), the RNG states (``rng.*``)
and whatever state the task carries between batches (``carry.*``). Its string metadata holds
JSON: the trainer's counters and the optimizer's non-tensor settings. Nothing is unpickled on
load, so a checkpoint from anywhere is safe to open.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
old file: a crash mid-write leaves the last good checkpoint as it was (and a ``.NAME.*.tmp`` file,
which ``remove_stale_temporaries`` clears at the next start). The metadata also holds a sha256 of
the tensor payload, checked on load, so a damaged file is named as such instead of loading wrong
numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

CHECKSUM = "sha256"
"""The safetensors metadata key holding the sha256 (hex) of the tensor payload."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or does not fit the model."""


def _safetensors():
    try:
        import safetensors.torch
    except ImportError as e:
        raise ImportError("checkpoints need safetensors: pip install 'rnnkit[train]'") from e
    return safetensors.torch


def require_safetensors() -> None:
    """Raise the ``ImportError`` naming the extra now, before a run writes anything."""
    _safetensors()


def atomic_write_bytes(path: Path, data: bytes | list[bytes | memoryview]) -> None:
    """Write ``data`` (bytes, or pieces written in turn) to ``path`` so that readers see the old
    file or the new, never half; the file gets the usual permissions under the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # created 0o666 with O_EXCL, so the kernel applies the umask (mkstemp would make it 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in [data] if isinstance(data, (bytes, bytearray)) else data:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: without this a power cut can bring the old name back."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse; the rename still holds
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files that writes cut short by a crash left in ``folder``.

    Call it only while holding the run's lock: a live trainer's half-written file looks the same.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path, what: str = "file") -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{what} not found: {path}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{what} {path} is corrupt (not valid JSON): {e}") from e
    except (NotADirectoryError, IsADirectoryError) as e:  # a run path under a file, or a folder
        raise CheckpointError(f"{what} not found: {path} ({e.strerror})") from e


def _split(raw: bytes) -> tuple[dict, memoryview]:
    """A safetensors file's header (JSON) and its tensor payload."""
    header_len = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + header_len]), memoryview(raw)[8 + header_len :]


def save(path: Path, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Save tensors and JSON-able metadata as one safetensors file, atomically, with the
    payload's sha256 in the metadata."""
    st = _safetensors()
    # clone: safetensors refuses tensors that share memory (tied or viewed weights)
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    header, payload = _split(st.save(tensors, metadata={"rnnkit": json.dumps(meta)}))
    # the offsets in the header count from the payload's start, so a longer header is harmless
    header.setdefault("__metadata__", {})[CHECKSUM] = hashlib.sha256(payload).hexdigest()
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # safetensors pads its header to 8 bytes with spaces
    atomic_write_bytes(path, [len(head).to_bytes(8, "little"), head, payload])


def load(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load a checkpoint's tensors (on the CPU) and metadata; a clear error if it is damaged."""
    st = _safetensors()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        raw = path.read_bytes()
        tensors = st.load(raw)
        header, payload = _split(raw)
        meta = json.loads(header.get("__metadata__", {}).get("rnnkit", "{}"))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated and cannot be read ({e}); "
            "restore it from a copy, or start the run again without --resume"
        ) from e
    stored = header.get("__metadata__", {}).get(CHECKSUM)  # None in checkpoints made before it
    if stored is not None and hashlib.sha256(payload).hexdigest() != stored:
        raise CheckpointError(
            f"checkpoint {path} is damaged: its tensors do not match the sha256 stored when it "
            "was saved; restore it from a copy, or start the run again without --resume"
        )
    return tensors, meta


def nonfinite(tensors: dict[str, Tensor]) -> list[str]:
    """The names of the floating-point tensors that hold a NaN or an infinity."""
    return [k for k, t in tensors.items() if t.is_floating_point() and not t.isfinite().all()]


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
