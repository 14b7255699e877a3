"""The cell registry: one name per cell, so that every task's ``--cell`` can pick it.

A cell is one file (one time step, ``cell(input_size, hidden_size) -> module`` mapping
``(x_t, state) -> (y_t, state)``, see ``rnnkit.Recurrent``) and one ``register_cell`` line
below. ``rnnkit.layers.make_layer`` builds a layer from an entry: the standard cells run on
torch's fused kernels (``fused``), every other cell through ``rnnkit.Recurrent``.

Besides a registered name, ``--cell`` takes a user's own cell class that was never registered:

- ``MODULE:CLASS``, a class in an importable module (``mypkg.cells:PeepholeLSTM``);
- ``path/to/file.py:CLASS``, a class in a Python file (loaded from that file).

Example::

    >>> from rnnkit.cells.registry import register_cell
    >>> register_cell("mine", MyCell, summary="my cell")    # then ManyToMany(..., cell="mine")
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from torch import nn

from rnnkit.cells.standard import GRUCell, LSTMCell, RNNCell


class CellError(ValueError):
    """A ``--cell`` that names no registered cell, or a cell file or class that cannot be used."""


@dataclass(frozen=True)
class CellEntry:
    """What builds one kind of cell.

    Attributes:
        name: the registered name (or the ``MODULE:CLASS`` / ``FILE.py:CLASS`` spec).
        cell: builds one layer-direction's cell as ``cell(input_size, hidden_size, **kwargs)``.
        kwargs: fixed keyword arguments for ``cell`` (``nonlinearity="relu"``, say).
        fused: torch's fused-kernel mode (``LSTM``, ``GRU``, ``RNN_TANH``, ``RNN_RELU``) when the
            cell is one of torch's own; ``None`` for every other cell.
        summary: one line for help texts.
    """

    name: str
    cell: Callable[..., nn.Module]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    fused: str | None = None
    summary: str = ""


_CELLS: dict[str, CellEntry] = {}


def register_cell(
    name: str,
    cell: Callable[..., nn.Module] | str,
    *,
    summary: str = "",
    fused: str | None = None,
    **kwargs: Any,
) -> CellEntry:
    """Register ``cell`` under ``name`` for every task's ``--cell`` (and ``make_layer``).

    ``cell`` is built as ``cell(input_size, hidden_size, **kwargs)`` once per layer and
    direction; it may be given as ``"package.module:Class"``, imported when first used (so a
    cell file costs nothing until it is picked). Registering a name again replaces the entry.
    """
    if not name or ":" in name or name != name.strip():
        raise CellError(f"a cell name must be a non-empty word without ':', got {name!r}")
    if not callable(cell) and not (isinstance(cell, str) and ":" in cell):
        raise CellError(f"cell {name!r}: {cell!r} is neither callable nor 'module:Class'")
    if fused not in (None, "LSTM", "GRU", "RNN_TANH", "RNN_RELU"):
        raise CellError(f"cell {name!r}: unknown fused mode {fused!r}")
    entry = CellEntry(name, cell, MappingProxyType(dict(kwargs)), fused, summary)
    _CELLS[name] = entry
    return entry


def cell_names() -> tuple[str, ...]:
    """The registered cell names, in registration order."""
    return tuple(_CELLS)


def cells_help() -> str:
    """The registered names for a help text, and how to give a cell of one's own."""
    return f"{', '.join(_CELLS)}, or your own cell class as MODULE:CLASS or FILE.py:CLASS"


def get_cell(spec: str | CellEntry) -> CellEntry:
    """The entry for a registered name, a ``MODULE:CLASS`` or a ``FILE.py:CLASS`` spec."""
    if isinstance(spec, CellEntry):
        return spec
    if not isinstance(spec, str):
        raise CellError(f"--cell must be a name or MODULE:CLASS, got {type(spec).__name__}")
    if spec in _CELLS:
        entry = _CELLS[spec]
        if isinstance(entry.cell, str):  # registered by its import path: import it now
            module, _, class_name = entry.cell.partition(":")
            entry = replace(entry, cell=getattr(importlib.import_module(module), class_name))
            _CELLS[spec] = entry
        return entry
    if ":" not in spec:
        raise CellError(f"--cell must be one of {cells_help()}; got {spec!r}")
    where, _, class_name = spec.rpartition(":")
    if not where or not class_name.isidentifier():
        raise CellError(f"--cell {spec!r}: give MODULE:CLASS or FILE.py:CLASS")
    if _is_file(where):
        module = _load_file(where, spec)
        origin = f"{where}"
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise CellError(f"--cell {spec!r}: cannot import module {where!r} ({e})") from e
        origin = f"module {where}"
    cls = getattr(module, class_name, None)
    if cls is None:
        raise CellError(f"--cell {spec!r}: {origin} defines no {class_name!r}")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise CellError(f"--cell {spec!r}: {class_name} in {origin} is not an nn.Module class")
    return CellEntry(spec, cls, MappingProxyType({}), None, cls.__doc__ or "")


def canonical_cell(spec: str) -> str:
    """``spec`` checked, as a run stores it: a cell file's path made absolute, so that the run
    rebuilds the same cell from any working folder."""
    entry = get_cell(spec)
    if spec in _CELLS:
        return spec
    where, _, class_name = entry.name.rpartition(":")
    if _is_file(where):
        return f"{Path(where).resolve()}:{class_name}"
    return spec


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _load_file(path: str, spec: str):
    """Import a cell file as a module of its own (named by its absolute path, loaded once)."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise CellError(f"--cell {spec!r}: no cell file {path} (has it moved?)")
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:12]
    module_name = f"_rnnkit_cell_{file.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    module_spec = importlib.util.spec_from_file_location(module_name, file)
    if module_spec is None or module_spec.loader is None:
        raise CellError(f"--cell {spec!r}: {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise CellError(f"--cell {spec!r}: {path} failed to load: {type(e).__name__}: {e}") from e
    return module


# -- the registered cells: one line each ------------------------------------------------------
register_cell("lstm", LSTMCell, fused="LSTM", summary="long short-term memory (torch's kernel)")
register_cell("gru", GRUCell, fused="GRU", summary="gated recurrent unit (torch's kernel)")
register_cell("rnn", RNNCell, fused="RNN_TANH", nonlinearity="tanh", summary="Elman RNN, tanh")
register_cell("rnn_relu", RNNCell, fused="RNN_RELU", nonlinearity="relu", summary="Elman, ReLU")
register_cell("lnlstm", "rnnkit.cells.layer_norm_lstm:LayerNormLSTMCell", summary="LN-LSTM")
register_cell("lngru", "rnnkit.cells.layer_norm_gru:LayerNormGRUCell", summary="LN-GRU")
register_cell("mingru", "rnnkit.cells.min_rnn:MinGRUCell", summary="minGRU, a scan (Feng 2024)")
register_cell("minlstm", "rnnkit.cells.min_rnn:MinLSTMCell", summary="minLSTM, a scan (Feng 2024)")
