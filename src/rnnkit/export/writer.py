"""``export_run``: write a run's graphs in one format, and ``export.json`` beside them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rnnkit.export.plan import Graph, plan_for
from rnnkit.tasks.base import load_run

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
MANIFEST = "export.json"


def _describe(name: str, tensor: torch.Tensor, axes: list, dynamic_time: bool) -> dict:
    """One tensor for ``export.json``: its dtype and its shape, a name for each dynamic axis."""
    shape = [
        a if a is not None and (dynamic_time or "time" not in a) else int(n)
        for a, n in zip(axes, tensor.shape)
    ]
    return {"name": name, "dtype": str(tensor.dtype).removeprefix("torch."), "shape": shape}


def _manifest_entry(graph: Graph, file: str) -> dict:
    args = [t for t, _ in graph.inputs.values()]
    with torch.no_grad():
        outs = graph.module(*args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    return {
        "name": graph.name,
        "file": file,
        "about": graph.about,
        "dynamic_time": graph.dynamic_time,
        "inputs": [_describe(n, t, a, graph.dynamic_time) for n, (t, a) in graph.inputs.items()],
        "outputs": [
            _describe(n, t, a, graph.dynamic_time) for (n, a), t in zip(graph.outputs.items(), outs)
        ],
    }


def export_run(
    run_dir: str | Path,
    *,
    format: str = "onnx",
    out: str | Path | None = None,
    which: str = "best",
    device: str = "cpu",
) -> dict:
    """Export a run's model: its graphs as ``format`` files and ``export.json`` in ``out``.

    Args:
        run_dir: the run folder.
        format: ``"onnx"`` or ``"torchscript"``.
        out: the folder to write (default ``RUN/export-FORMAT``); created if missing.
        which: ``best`` or ``last`` weights.
        device: ``cpu``: export traces on the CPU, in float32 (the files then run on any
            device their runtime supports).

    Returns:
        The manifest written to ``export.json`` (plus ``folder``: where it is).
    """
    if format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if device != "cpu":
        raise ValueError(f"export traces on the CPU; --device {device} is not supported")
    if format == "onnx":
        from rnnkit.export.onnx import export_onnx as write
        from rnnkit.export.onnx import require_onnx

        require_onnx()
    else:
        from rnnkit.export.torchscript import export_torchscript as write
    run = load_run(run_dir, which, device)
    plan = plan_for(run)
    folder = Path(out) if out is not None else Path(run_dir) / f"export-{format}"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for graph in plan.graphs:
        file = graph.name + FORMATS[format]
        write(graph, folder / file)
        entries.append(_manifest_entry(graph, file))
    manifest = {
        "format": format,
        "run": str(run_dir),
        "checkpoint": which,
        "task": run.task["kind"],
        "cell": run.task["model"].get("cell"),
        "graphs": entries,
        "state": (
            "recurrent state tensors are inputs and outputs ((L*D, B, H) each: h, and c for an "
            "LSTM); the zero state starts a sequence; feed each *_out back as the next input"
        ),
        **plan.client,
        "limitations": plan.limitations,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return {**manifest, "folder": str(folder)}
