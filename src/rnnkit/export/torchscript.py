"""TorchScript export of a run's graphs: ``torch.jit.trace`` of the export wrappers.

Tracing records torch's fused recurrent ops with their inputs' shapes left symbolic, so a
native cell's graph takes any batch and time; a custom cell's Python time loop is recorded for
the traced length (its step graphs: one step). Load with ``torch.jit.load`` (torch only).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from rnnkit.export.plan import Graph


def export_torchscript(graph: Graph, path: Path) -> Path:
    """Trace one graph and save it to ``path`` (``.pt``)."""
    args = tuple(t for t, _ in graph.inputs.values())
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(graph.module, args, check_trace=False)
    traced.save(str(path))
    return path
