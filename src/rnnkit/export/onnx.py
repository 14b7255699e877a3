"""ONNX export of a run's graphs, with the legacy (TorchScript-based) exporter.

The legacy exporter maps torch's fused recurrent ops (``nn.LSTM``/``GRU``/``RNN``, packed or
not) to the ONNX ``LSTM``/``GRU``/``RNN`` operators, whose batch and time axes stay dynamic;
the dynamo exporter unrolls them. ``onnx`` and ``onnxruntime`` come with ``rnnkit[onnx]``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from rnnkit.export.plan import Graph

OPSET = 17


def require_onnx():
    """Import ``onnx`` and ``onnxruntime``, or say which extra brings them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError(
            f"ONNX export needs onnx and onnxruntime ({e.name} is missing): "
            "pip install 'rnnkit[onnx]'"
        ) from e
    return onnx, onnxruntime


def dynamic_axes(graph: Graph) -> dict[str, dict[int, str]]:
    """``{tensor: {axis: name}}`` for every named (dynamic) axis of a graph's inputs and outputs;
    the time axis only where the graph keeps it dynamic."""
    axes: dict[str, dict[int, str]] = {}
    named = [(n, a) for n, (_, a) in graph.inputs.items()] + list(graph.outputs.items())
    for name, names in named:
        keep = {
            i: a
            for i, a in enumerate(names)
            if a is not None and (graph.dynamic_time or "time" not in a)
        }
        if keep:
            axes[name] = keep
    return axes


def export_onnx(graph: Graph, path: Path) -> Path:
    """Write one graph to ``path`` (``.onnx``) and check it with ``onnx.checker``."""
    onnx, _ = require_onnx()
    args = tuple(t for t, _ in graph.inputs.values())
    module = graph.module
    with warnings.catch_warnings():
        # the exporter warns about packed sequences' shape inference and batch-size-1 RNNs;
        # parity tests check the result instead
        warnings.simplefilter("ignore")
        if any(isinstance(m, torch.jit.ScriptModule) for m in module.modules()):
            # a scripted time loop (a custom cell's) inside: the exporter's own tracer refuses
            # script submodules, so trace the whole first and export that
            with torch.no_grad():
                module = torch.jit.trace(module, args, check_trace=False)
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(graph.inputs),
            output_names=list(graph.outputs),
            dynamic_axes=dynamic_axes(graph),
            opset_version=OPSET,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))
    return path
