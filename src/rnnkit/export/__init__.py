"""Export: a trained run as ONNX or TorchScript files a client runs without rnnkit, and the
Python inference API (``rnnkit.load``).

    rnnkit export runs/shk --format onnx --out shk-onnx

writes the run's graphs (``rnnkit.export.plan``: a step model and a whole-sequence model for a
language model, ``(inputs, lengths) -> scores`` for a classifier...) and ``export.json``, which
names every input and output with its dtype and shape (``"batch"``, ``"time"``: dynamic axes)
and holds what a client needs beside them: the vocabulary, the labels, the scalers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rnnkit.export.writer import FORMATS, export_run

__all__ = ["FORMATS", "ExportOptions", "export_run", "show_export"]


@dataclass(kw_only=True)
class ExportOptions:
    """What ``rnnkit export`` writes."""

    format: Literal["onnx", "torchscript"] = "onnx"
    """onnx (onnxruntime and any ONNX runtime; needs rnnkit[onnx]) or torchscript (torch.jit)."""
    out: str | None = None
    """The folder to write (default: RUN/export-FORMAT)."""


def show_export(manifest: dict, options: ExportOptions | None) -> str:
    """The files written, one line each."""
    lines = [f"{manifest['format']} export of {manifest['run']} ({manifest['task']}) in "
             f"{manifest['folder']}:"]  # fmt: skip
    for graph in manifest["graphs"]:
        lines.append(f"  {graph['file']:<24}{graph['about']}")
    lines.append(f"  {'export.json':<24}names, dtypes, shapes; what a client needs beside them")
    lines.extend(f"  note: {n}" for n in manifest["limitations"])
    return "\n".join(lines)
