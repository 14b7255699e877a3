"""rnnkit's compiled CPU kernels: built at first use, cached after, optional.

``layer_norm_rnn.cpp`` runs the whole time loop of the layer-normalised LSTM and GRU engines
(``rnnkit.cells.layer_norm_fused``; the GRU's also without the norm, for
``rnnkit.GRU(backend="fused")``) in C++, forward and backward: per step one matrix product and
one fused pass over the batch rows, where PyTorch needs some ten dispatched kernels and the Python
between them. ``step_program.cpp`` runs the forward time loop of any plain cell whose step
``rnnkit.layers.step_program`` could lower to its small set of operations, and ``min_rnn.cpp``
the gate maths around the minimal cells' scan (``common.h``: what they share, with the pool
of whole-sequence buffers). They are compiled by ``torch.utils.cpp_extension`` the first time a
process asks for them, as two units (the last two sources share one), side by side: about
15-20 s on a 2-core machine (``benchmarks/kernel_build.py`` times it), one line on stderr says
so. They are cached in torch's extension folder (``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``), where torch's lock file keeps two processes building at once
from tripping over each other.

Nothing depends on it: ``load()`` returns ``None`` when ``RNNKIT_KERNELS=0`` is set, or when the
build fails (no compiler, no ninja, no headers; one warning line says why), and the engines then
run their pure-PyTorch loops, which give the same numbers to rounding.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from pathlib import Path

import torch

_NAME = "rnnkit_kernels"
_FOLDER = Path(__file__).parent
# step_program.cpp and min_rnn.cpp are compiled as one unit (step_program_and_min_rnn.cpp)
_SOURCES = [_FOLDER / "layer_norm_rnn.cpp", _FOLDER / "step_program_and_min_rnn.cpp"]
_HEADERS = [_FOLDER / "common.h", _FOLDER / "step_program.cpp", _FOLDER / "min_rnn.cpp"]


def enabled() -> bool:
    """Whether the environment allows the kernels (``RNNKIT_KERNELS=0`` turns them off)."""
    return os.environ.get("RNNKIT_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off")


@functools.cache
def _build() -> object | None:
    try:
        from torch.utils import cpp_extension

        root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
        folder = Path(root) / _NAME
        built = folder / f"{_NAME}.so"
        newest = max(p.stat().st_mtime for p in _SOURCES + _HEADERS)
        if not built.exists() or built.stat().st_mtime < newest:
            print(
                "building rnnkit's C++ kernels (first use, ~20 s; cached after)",
                file=sys.stderr,
                flush=True,
            )
        folder.mkdir(parents=True, exist_ok=True)
        _ninja_on_path()
        cpp_extension.load(
            name=_NAME,
            sources=[str(p) for p in _SOURCES],
            extra_include_paths=[str(_FOLDER)],
            # -fopenmp: at::parallel_for is inline OpenMP code, serial without it. The library
            # resolves to the libgomp torch has already loaded (same soname), so one runtime.
            # No -march: the build must run on any x86-64 machine the cache folder is shared with.
            # -fno-trapping-math / -fno-math-errno: without them GCC will not turn the row
            # passes' float selects (the clamps of exp and tanh) into SIMD code.
            extra_cflags=["-O3", "-fopenmp", "-fno-trapping-math", "-fno-math-errno"],
            extra_ldflags=["-fopenmp"],
            build_directory=str(folder),
            is_python_module=False,
            verbose=False,
        )
        return torch.ops.rnnkit_kernels
    except Exception as error:  # any failure means "use the PyTorch loops"
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if "ninja" in first_line.lower():
            first_line += "; pip install 'rnnkit[kernels]' provides it"
        warnings.warn(
            f"rnnkit: could not build the fused cell kernels ({first_line[:200]}); "
            "using the PyTorch loops (same numbers, slower). Set RNNKIT_KERNELS=0 to skip the try.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _ninja_on_path() -> None:
    """Let torch find the ``ninja`` of the ``kernels`` extra, which lives in the environment's
    ``bin`` folder: that folder is not on ``PATH`` when Python is run by its full path."""
    try:
        import ninja
    except ImportError:
        return  # a system ninja, or the one-line warning below
    folders = os.environ.get("PATH", "").split(os.pathsep)
    if ninja.BIN_DIR not in folders:
        os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, *folders])


def load() -> object | None:
    """``torch.ops.rnnkit_kernels``, built on first use; ``None`` if disabled or unbuildable."""
    return _build() if enabled() else None


def usable(*tensors: torch.Tensor) -> object | None:
    """The kernels if they can run on these tensors (CPU, float32 or float64), else ``None``.

    Never while tracing, scripting or compiling (ONNX and TorchScript export, ``torch.compile``,
    ``torch.export``), nor on tensor subclasses (fake or functional tensors): the kernels are
    opaque to those, which need the PyTorch loops' ordinary ops.
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return None
    if not all(type(t) in (torch.Tensor, torch.nn.Parameter) and t.device.type == "cpu"
               and t.dtype in (torch.float32, torch.float64) for t in tensors):  # fmt: skip
        return None
    if len({t.dtype for t in tensors}) != 1:
        return None
    return load()
