"""A plain cell's step as a small program for the C++ time loop: forward-only speed for any cell.

``rnnkit.layers.hoist`` splits a plain cell's forward into a whole-sequence input side and a
per-step graph. In a Python loop that step costs one dispatched kernel per operation (a GRU
step: one product and some ten elementwise kernels) plus the Python between them, which at
H 128-256 costs more than the maths. This module lowers the step graph to a list of operations
that ``cells/kernels/step_program.cpp`` runs for every step without returning to Python:

- per-step products: a plain ``nn.Linear``, ``F.linear`` or a matrix product with a 2-D constant,
  on a value of the step;
- elementwise operations: ``+ - * /``, ``neg``, ``sigmoid``, ``tanh``, ``relu``, ``exp``, ``log``,
  ``abs``, ``sqrt``, ``rsqrt``, ``square``, ``silu``, ``reciprocal``, ``maximum``, ``minimum`` (as
  functions, methods or modules), between values of the step, constants (a vector over the
  features or one number, parameters included) and numbers;
- ``chunk`` / ``split`` along the features, and the parts they return;
- constants (parameters and what is computed from them alone), evaluated once per call.

Anything else (dropout and other random operations, reductions, reshapes, indexing, Python that
needs values) makes the step :class:`Unsupported`, and the cell keeps its per-step loop. So does
every call that needs a gradient: the program runs forward only, where nothing is recorded.

The program is built at the first call for a given input width, state widths and dtype, from
one step run in Python on that call's first slices (to learn every value's width), and cached on
the hoisted cell. It holds no tensors: parameters are read from the cell at every call.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from rnnkit.cells import kernels
from rnnkit.cells.kernels import dense
from rnnkit.layers.hoist import HoistedCell, call_submodule, read_attr
from rnnkit.state import State, from_leaves, leaves

# Operation codes and buffer kinds: the same numbers as step_program.cpp's Code and Kind.
OPS = {
    "copy": 0,
    "neg": 1,
    "sigmoid": 2,
    "tanh": 3,
    "relu": 4,
    "exp": 5,
    "log": 6,
    "abs": 7,
    "sqrt": 8,
    "rsqrt": 9,
    "square": 10,
    "silu": 11,
    "reciprocal": 12,
    "add": 32,
    "sub": 33,
    "mul": 34,
    "div": 35,
    "maximum": 36,
    "minimum": 37,
    "linear": 64,
}
KINDS = {
    "xp": 0,
    "state": 1,
    "state_next": 2,
    "ys": 3,
    "temp": 4,
    "product": 5,
    "const": 6,
    "scalar": 7,
}

_UNARY_FUNCTIONS = {
    torch.neg: "neg",
    operator.neg: "neg",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.relu: "relu",
    F.relu: "relu",
    torch.exp: "exp",
    torch.log: "log",
    torch.abs: "abs",
    torch.sqrt: "sqrt",
    torch.rsqrt: "rsqrt",
    torch.square: "square",
    F.silu: "silu",
    torch.reciprocal: "reciprocal",
}
_UNARY_METHODS = {
    "neg",
    "sigmoid",
    "tanh",
    "relu",
    "exp",
    "log",
    "abs",
    "sqrt",
    "rsqrt",
    "square",
    "reciprocal",
}
_UNARY_MODULES = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu", nn.SiLU: "silu"}
_BINARY_FUNCTIONS = {
    operator.add: "add",
    torch.add: "add",
    operator.sub: "sub",
    torch.sub: "sub",
    operator.mul: "mul",
    torch.mul: "mul",
    operator.truediv: "div",
    torch.div: "div",
    torch.maximum: "maximum",
    torch.minimum: "minimum",
}
_BINARY_METHODS = {"add", "sub", "mul", "div", "maximum", "minimum"}
# the same value under another name: nothing to compute
_ALIAS_FUNCTIONS = {operator.pos}
_ALIAS_METHODS = {"contiguous", "clone"}
_SPLITS = {torch.chunk, torch.split}
_MATMULS = {torch.matmul, operator.matmul}
# what a constant (a value made from parameters and numbers alone) may be computed with: pure
# operations, which give the same value once per call as once per step
_CONSTANT_FUNCTIONS = (
    set(_UNARY_FUNCTIONS)
    | set(_BINARY_FUNCTIONS)
    | _ALIAS_FUNCTIONS
    | _SPLITS
    | _MATMULS
    | {operator.getitem, torch.t, torch.transpose, torch.cat, torch.stack, F.softplus}
)
_CONSTANT_METHODS = (
    _UNARY_METHODS
    | _BINARY_METHODS
    | _ALIAS_METHODS
    | {"t", "transpose", "view", "reshape", "unsqueeze", "squeeze", "chunk", "split", "to"}
)


class Unsupported(Exception):
    """A step this lowering cannot express: the cell keeps its per-step loop."""


@dataclass(frozen=True)
class _Operand:
    """Columns ``[col, col + width)`` of a buffer's rows; width 1 is one value for the row."""

    buffer: int
    col: int
    width: int


@dataclass
class Program:
    """A lowered step: the rows of ``step_program.cpp``'s program and how to fill its inputs."""

    ops: list[list[int]] = field(default_factory=list)
    buffers: list[tuple[int, int, int]] = field(default_factory=list)
    scalars: list[float] = field(default_factory=list)
    constants: list[fx.Node] = field(default_factory=list)  # the CONST buffers' nodes, in order
    # (cell, constants) -> the tensor, read at every call
    weights: list[Callable[[nn.Module, dict], Tensor]] = field(default_factory=list)
    biases: list[Callable[[nn.Module, dict], Tensor]] = field(default_factory=list)
    y_width: int = 0
    state_is_tensor: bool = True
    cell_node: fx.Node | None = None
    constant_nodes: list[fx.Node] = field(default_factory=list)  # evaluated once per call

    def buffer(self, kind: str, index: int, width: int) -> int:
        self.buffers.append((KINDS[kind], index, width))
        return len(self.buffers) - 1


# ------------------------------------------------------------------------------- lowering


def lower(graph_module: fx.GraphModule, cell: nn.Module, xp: Any, state: State) -> Program:
    """The program of ``graph_module`` (``(cell, xp_t, state) -> (y_t, state)``), run once here
    on this step's values (``xp``: one slice or a tuple of them) to learn every value's width.
    Raises :class:`Unsupported` for a step it cannot express."""
    values = _Recorder(graph_module).values(cell, xp, state)
    nodes = list(graph_module.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 3:
        raise Unsupported("the step graph does not take (cell, xp, state)")
    cell_node, xp_node, state_node = placeholders
    batch = leaves(state)[0].shape[0]
    program = Program(state_is_tensor=isinstance(state, Tensor), cell_node=cell_node)
    desc: dict[fx.Node, Any] = {}
    xps = xp if isinstance(xp, tuple) else (xp,)
    parts = [
        _Operand(program.buffer("xp", k, _width(v, batch)), 0, _width(v, batch))
        for k, v in enumerate(xps)
    ]
    desc[xp_node] = parts[0] if isinstance(xp, Tensor) else tuple(parts)
    leaves_in = [
        _Operand(program.buffer("state", j, _width(v, batch)), 0, _width(v, batch))
        for j, v in enumerate(leaves(state))
    ]
    desc[state_node] = leaves_in[0] if isinstance(state, Tensor) else tuple(leaves_in)
    constant = {cell_node}
    const_slot: dict[fx.Node, _Operand] = {}
    for node in nodes:
        if node.op in ("placeholder", "output"):
            continue
        if all(n in constant for n in node.all_input_nodes) and _pure(cell, node):
            constant.add(node)
            program.constant_nodes.append(node)
            continue
        desc[node] = _lower_node(program, cell, node, desc, values, constant, const_slot, batch)
    output = next(n for n in nodes if n.op == "output").args[0]
    _lower_output(program, output, desc, leaves_in, batch)
    return program


def _lower_node(
    program: Program,
    cell: nn.Module,
    node: fx.Node,
    desc: dict[fx.Node, Any],
    values: dict[fx.Node, Any],
    constant: set[fx.Node],
    const_slot: dict[fx.Node, _Operand],
    batch: int,
) -> Any:
    target, args, kwargs = node.target, node.args, dict(node.kwargs)
    if node.op == "call_function" and target is operator.getitem:
        source, index = args
        if isinstance(desc.get(source), tuple) and isinstance(index, int):
            return desc[source][index]
        raise Unsupported("indexing a value of the step")
    if kwargs.pop("inplace", False) is not False:
        raise Unsupported("an in-place operation")
    module = _called_module(cell, node)
    if module is not None:
        target, args = type(module), args[2:]  # call_submodule(cell, path, *args)
    split = _is_split(node)
    if split:
        return _lower_split(program, node, desc, values, batch)
    linear = _linear_parts(cell, node, module, constant)
    if linear is not None:
        source, weight, bias = linear
        return _lower_linear(program, desc, _operand(desc, source), values[node], weight, bias,
                             batch)  # fmt: skip
    name = _elementwise_name(node, target, module)
    if name is None:
        raise Unsupported(f"{node.op} {getattr(target, '__name__', target)}")
    if kwargs:
        raise Unsupported(f"{name} with keyword arguments {sorted(kwargs)}")
    if name == "alias":
        return _operand(desc, args[0])
    if name == "rsub":
        name, args = "sub", (args[1], args[0])
    width = _width(values[node], batch)
    operands = [_value_operand(program, a, desc, values, constant, const_slot, width) for a in args]
    if len(operands) != (1 if OPS[name] < OPS["add"] else 2):
        raise Unsupported(f"{name} with {len(operands)} operands")
    out = _Operand(program.buffer("temp", 0, width), 0, width)
    _emit(program, name, out, *operands)
    return out


def _lower_split(
    program: Program, node: fx.Node, desc: dict, values: dict, batch: int
) -> tuple[_Operand, ...]:
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    source = _operand(desc, node.args[0])
    if dim not in (1, -1) or source.width == 1:
        raise Unsupported("a split along the batch")
    parts, col = [], source.col
    for part in values[node]:
        width = _width(part, batch)
        parts.append(_Operand(source.buffer, col, width))
        col += width
    return tuple(parts)


def _lower_linear(
    program: Program,
    desc: dict,
    source: _Operand,
    value: Any,
    weight: Callable[[nn.Module, dict], Tensor],
    bias: Callable[[nn.Module, dict], Tensor] | None,
    batch: int,
) -> _Operand:
    width = _width(value, batch)
    if source.width == 1 and width != 1:
        raise Unsupported("a product of a broadcast value")
    out = _Operand(program.buffer("product", 0, width), 0, width)
    program.weights.append(weight)
    bias_index = -1
    if bias is not None:
        program.biases.append(bias)
        bias_index = len(program.biases) - 1
    program.ops.append([OPS["linear"], out.buffer, 0, width, source.buffer, source.col,
                        source.width, len(program.weights) - 1, bias_index, 0])  # fmt: skip
    return out


def _lower_output(
    program: Program, output: Any, desc: dict, leaves_in: list[_Operand], batch: int
) -> None:
    if not (isinstance(output, (tuple, list)) and len(output) == 2):
        raise Unsupported("the step does not return (y, state)")
    y, state = output
    y = _operand(desc, y)
    new = (
        [state]
        if program.state_is_tensor
        else list(state)
        if isinstance(state, (tuple, list))
        else None
    )  # noqa: E501
    if new is None or len(new) != len(leaves_in):
        raise Unsupported("the new state's structure differs from the old one's")
    program.y_width = y.width
    _emit(program, "copy", _Operand(program.buffer("ys", 0, y.width), 0, y.width), y)
    for j, (node, old) in enumerate(zip(new, leaves_in)):
        leaf = _operand(desc, node)
        if leaf.width != old.width:
            raise Unsupported("a state leaf changes its width")
        out = _Operand(program.buffer("state_next", j, old.width), 0, old.width)
        _emit(program, "copy", out, leaf)


def _emit(program: Program, name: str, out: _Operand, a: _Operand, b: _Operand | None = None):
    for operand in (a, b):
        if operand is not None and operand.width not in (1, out.width):
            raise Unsupported(f"{name} of widths {operand.width} and {out.width}")
    row = [OPS[name], out.buffer, out.col, out.width, a.buffer, a.col, int(a.width != 1)]
    row += [b.buffer, b.col, int(b.width != 1)] if b is not None else [0, 0, 0]
    program.ops.append(row)


def _value_operand(
    program: Program,
    arg: Any,
    desc: dict,
    values: dict,
    constant: set[fx.Node],
    const_slot: dict[fx.Node, _Operand],
    width: int,
) -> _Operand:
    """An elementwise operand: a value of the step, a constant (vector or one number) or a
    number."""
    if isinstance(arg, bool) or not isinstance(arg, (int, float, fx.Node)):
        raise Unsupported(f"an operand {type(arg).__name__}")
    if isinstance(arg, (int, float)):
        program.scalars.append(float(arg))
        return _Operand(program.buffer("scalar", len(program.scalars) - 1, 1), 0, 1)
    if arg in constant:
        if arg not in const_slot:
            value = values[arg]
            if not isinstance(value, Tensor) or value.numel() not in (1, width):
                raise Unsupported("a constant that is not a vector over the features")
            if value.dim() > 2 or (value.dim() == 2 and value.shape[0] != 1):
                raise Unsupported("a constant with a batch dimension")
            program.constants.append(arg)
            index = len(program.constants) - 1
            const_slot[arg] = _Operand(program.buffer("const", index, value.numel()), 0,
                                       value.numel())  # fmt: skip
        return const_slot[arg]
    return _operand(desc, arg)


def _operand(desc: dict, node: Any) -> _Operand:
    value = desc.get(node) if isinstance(node, fx.Node) else None
    if not isinstance(value, _Operand):
        raise Unsupported("an operand that is not a value of the step")
    return value


def _width(value: Any, batch: int) -> int:
    if not isinstance(value, Tensor) or value.dim() != 2 or value.shape[0] != batch:
        raise Unsupported("a value of the step that is not (B, F)")
    return value.shape[1]


def _called_module(cell: nn.Module, node: fx.Node) -> nn.Module | None:
    """The submodule a hoisted step calls (``call_submodule(cell, path, ...)``), or None."""
    if node.op == "call_function" and node.target is call_submodule:
        module = read_attr(cell, node.args[1])
        if isinstance(module, nn.Module):
            return module
    return None


def _is_split(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _SPLITS) or (
        node.op == "call_method" and node.target in ("chunk", "split")
    )


def _linear_parts(
    cell: nn.Module, node: fx.Node, module: nn.Module | None, constant: set[fx.Node]
) -> tuple[fx.Node, Callable, Callable | None] | None:
    """``(source, weight, bias)`` of a per-step product, the weight and bias read at call time
    (from the cell, or from the call's constants); None if ``node`` is not one."""
    if module is not None:
        if type(module) is not nn.Linear or len(node.args) != 3 or node.kwargs:
            return None
        path = node.args[1]
        bias = (lambda c, env: read_attr(c, path).bias) if module.bias is not None else None
        return node.args[2], lambda c, env: read_attr(c, path).weight, bias
    if node.op == "call_function" and node.target is F.linear:
        args = list(node.args) + [node.kwargs.get("bias")] * (3 - len(node.args))
        source, weight, bias = args[:3]
        if weight not in constant or (bias is not None and bias not in constant):
            raise Unsupported("a product with a weight that changes per step")
        return source, (lambda c, env: env[weight]), ((lambda c, env: env[bias])
                                                      if bias is not None else None)  # fmt: skip
    is_matmul = (node.op == "call_function" and node.target in _MATMULS) or (
        node.op == "call_method" and node.target in ("matmul", "mm")
    )
    if is_matmul:
        source, weight = node.args[:2]
        if weight not in constant:
            raise Unsupported("a product of two values of the step")
        return source, (lambda c, env: env[weight].t()), None
    return None


def _elementwise_name(node: fx.Node, target: Any, module: nn.Module | None) -> str | None:
    if module is not None:
        if type(module) is nn.Identity:
            return "alias"
        return _UNARY_MODULES.get(type(module))
    if node.op == "call_function":
        if target is torch.rsub:
            return "rsub"
        if target in _ALIAS_FUNCTIONS:
            return "alias"
        return _UNARY_FUNCTIONS.get(target) or _BINARY_FUNCTIONS.get(target)
    if node.op == "call_method":
        if target in _ALIAS_METHODS:
            return "alias"
        if target in _UNARY_METHODS or target in _BINARY_METHODS:
            return target
    return None


def _pure(cell: nn.Module, node: fx.Node) -> bool:
    """Whether a node made from constants alone gives the same value once per call."""
    if node.op == "call_function" and node.target is read_attr:
        return True
    if node.op == "call_function":
        return node.target in _CONSTANT_FUNCTIONS
    if node.op == "call_method":
        return node.target in _CONSTANT_METHODS
    return False


class _Recorder(fx.Interpreter):
    """Runs the step once and keeps every node's value."""

    def values(self, *args: Any) -> dict[fx.Node, Any]:
        self.seen: dict[fx.Node, Any] = {}
        with torch.no_grad():
            self.run(*args)
        return self.seen

    def run_node(self, node: fx.Node) -> Any:
        value = super().run_node(node)
        self.seen[node] = value
        return value


# ------------------------------------------------------------------------------- running


def constants(program: Program, cell: nn.Module) -> dict[fx.Node, Any]:
    """The program's constant nodes evaluated for this call: parameters as they are now."""
    env: dict[fx.Node, Any] = {program.cell_node: cell}
    for node in program.constant_nodes:
        args = fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
        if node.op == "call_method":
            env[node] = getattr(args[0], node.target)(*args[1:], **kwargs)
        else:
            env[node] = node.target(*args, **kwargs)
    return env


def run(program: Program, cell: nn.Module, xs: Any, state0: State) -> tuple[Tensor, State] | None:
    """The program over the whole sequence: ``(ys (T, B, F_y), final state)``, or None where the
    kernels cannot run on these tensors (the caller then runs the step loop)."""
    parts = xs if isinstance(xs, tuple) else (xs,)
    leaves0 = [h.contiguous() for h in leaves(state0)]
    dtype = leaves0[0].dtype
    with torch.no_grad():
        env = constants(program, cell)
        consts = [env[n].reshape(-1).contiguous() for n in program.constants]
        weights = [w(cell, env).contiguous() for w in program.weights]
        biases = [b(cell, env).contiguous() for b in program.biases]
    tensors = [*parts, *leaves0, *consts, *weights, *biases]
    ops = kernels.usable(*tensors)
    if ops is None or any(t.dtype != dtype for t in tensors):
        return None
    parts = [p if p.stride(-1) == 1 else p.contiguous() for p in parts]
    batch = leaves0[0].shape[0]
    packed = [dense.packed_for_steps(w, batch) for w in weights]
    packed = packed if packed and all(p is not None for p in packed) else []
    result = ops.step_program(
        torch.tensor(program.ops, dtype=torch.long).reshape(-1, 10),
        torch.tensor(program.buffers, dtype=torch.long).reshape(-1, 3),
        parts,
        leaves0,
        consts,
        weights,
        biases,
        packed,
        torch.tensor(program.scalars, dtype=dtype),
        program.y_width,
    )
    ys, finals = result[0], result[1:]
    return ys, from_leaves(state0, finals) if not program.state_is_tensor else finals[0]


class ProgramSequence:
    """A hoisted cell's ``sequence``: the forward-only time loop in C++, or None to decline.

    Declines (and the unroller runs its step loop) when a gradient is needed, when the kernels
    cannot run (not built, ``RNNKIT_KERNELS=0``, another device or dtype, a tracer), when a
    submodule has hooks (the program would skip them), or when the step is :class:`Unsupported`
    (remembered per input width, state widths and dtype, so the step is lowered once).
    """

    def __init__(self, hoisted: HoistedCell) -> None:
        self.hoisted = hoisted
        self.programs: dict[tuple, Program | None] = {}

    def __call__(self, x: Tensor, state0: State) -> tuple[Tensor, State] | None:
        cell = self.hoisted.cell
        parts = leaves(state0)
        if dense.needs_grad(x, *parts, *cell.parameters()) or _hooked(cell):
            return None
        if kernels.usable(x, *parts) is None:
            return None
        key = (x.shape[-1], tuple(h.shape[-1] for h in parts), x.dtype, isinstance(state0, Tensor))
        if self.programs.get(key, True) is None:
            return None  # lowered before: unsupported
        xs = self.hoisted.project_input(x)
        if key not in self.programs:
            first = tuple(p[0] for p in xs) if isinstance(xs, tuple) else xs[0]
            try:
                self.programs[key] = lower(self.hoisted.step_graph, cell, first, state0)
            except Unsupported:
                self.programs[key] = None
                return None
        return run(self.programs[key], cell, xs, state0)


def _hooked(cell: nn.Module) -> bool:
    """Whether calling the cell's submodules would run hooks (its own, or global ones)."""
    from torch.nn.modules import module as module_globals

    if module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in cell.modules())


def attach(hoisted: HoistedCell | None) -> HoistedCell | None:
    """Give a hoisted cell its forward-only C++ sequence (see :class:`ProgramSequence`)."""
    if hoisted is not None:
        hoisted.sequence = ProgramSequence(hoisted)
    return hoisted
