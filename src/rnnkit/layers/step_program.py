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

import functools
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
    "state_ys": 8,
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
    # the products' weights and biases, from the call's constants (read at every call)
    weights: list[Callable[[dict], Tensor]] = field(default_factory=list)
    biases: list[Callable[[dict], Tensor]] = field(default_factory=list)
    y_width: int = 0
    state_is_tensor: bool = True
    inputs: list[fx.Node] = field(default_factory=list)  # the constant inputs' placeholders
    constant_nodes: list[fx.Node] = field(default_factory=list)  # evaluated once per call

    @functools.cached_property
    def layout(self) -> tuple[Tensor, Tensor]:
        """The operations and buffers as the kernel takes them, made once (after lowering)."""
        ops = torch.tensor(self.ops, dtype=torch.long).reshape(-1, 10)
        return ops, torch.tensor(self.buffers, dtype=torch.long).reshape(-1, 3)

    def buffer(self, kind: str, index: int, width: int) -> int:
        self.buffers.append((KINDS[kind], index, width))
        return len(self.buffers) - 1


# ------------------------------------------------------------------------------- lowering


def lower(graph_module: fx.GraphModule, xp: Any, state: State, inputs: dict[str, Any]) -> Program:
    """The program of ``graph_module``, a step ``(xp_t, state, *inputs) -> (y_t, state)``.

    Its placeholders named ``xp`` and ``state`` are the step's input side (one ``(B, F)`` slice or
    a tuple of them) and state; every other placeholder is a constant input (a hoisted step's
    ``cell``, a reference step's weights), given by name in ``inputs`` here and at every call.
    The step is run once on these values to learn every value's width. Raises
    :class:`Unsupported` for a step it cannot express.
    """
    return _Lowering(graph_module, xp, state, inputs).program


class _Lowering:
    """One pass over the step graph, in order, giving each node a description: an
    :class:`_Operand` (a value of the step), a tuple of them (a split, a tuple state), or an
    ``int`` (a feature size, or arithmetic on sizes); constant nodes are collected instead."""

    def __init__(self, graph_module: fx.GraphModule, xp: Any, state: State, inputs: dict) -> None:
        nodes = list(graph_module.graph.nodes)
        placeholders = [n for n in nodes if n.op == "placeholder"]
        names = [n.target for n in placeholders]
        if "xp" not in names or "state" not in names or set(names) - {"xp", "state"} - set(inputs):
            raise Unsupported(f"the step graph takes {names}")
        given = {"xp": xp, "state": state, **inputs}
        self.values = _Recorder(graph_module).values(*(given[name] for name in names))
        self.batch = leaves(state)[0].shape[0]
        self.program = program = Program(
            state_is_tensor=isinstance(state, Tensor),
            inputs=[n for n in placeholders if n.target not in ("xp", "state")],
        )
        self.desc: dict[fx.Node, Any] = {}
        self.constant: set[fx.Node] = set(program.inputs)
        self.const_slot: dict[fx.Node, _Operand] = {}
        for node in placeholders:
            if node.target in ("xp", "state"):
                self.desc[node] = self._placeholder(node.target, given[node.target])
        for node in nodes:
            if node.op in ("placeholder", "output"):
                continue
            if all(n in self.constant for n in node.all_input_nodes) and _pure(node):
                self.constant.add(node)
                program.constant_nodes.append(node)
                continue
            self.desc[node] = self._node(node)
        self._output(next(n for n in nodes if n.op == "output").args[0])

    def _placeholder(self, name: str, value: Any) -> _Operand | tuple[_Operand, ...]:
        kind = "xp" if name == "xp" else "state"
        parts = value if isinstance(value, tuple) else leaves(value)
        operands = []
        for k, part in enumerate(parts):
            width = self._width(part)
            operands.append(_Operand(self.program.buffer(kind, k, width), 0, width))
        return operands[0] if isinstance(value, Tensor) else tuple(operands)

    # -- one node ------------------------------------------------------------------------------
    def _node(self, node: fx.Node) -> Any:
        target, args, kwargs = node.target, node.args, dict(node.kwargs)
        if node.op == "call_function" and target is operator.getitem:
            return self._getitem(node)
        size = self._size(node)
        if size is not None:
            return size
        if kwargs.pop("inplace", False) is not False:
            raise Unsupported("an in-place operation")
        module = self._called_module(node)
        if module is not None:
            if getattr(module, "inplace", False):  # nn.ReLU(inplace=True) changes its input
                raise Unsupported("an in-place module")
            target, args = type(module), args[2:]  # call_submodule(cell, path, *args)
        if _is_split(node):
            return self._split(node)
        linear = self._linear_parts(node, module)
        if linear is not None:
            return self._linear(node, *linear)
        if node.op == "call_function" and target is torch.addcmul:
            if kwargs.get("value", 1) != 1 or len(args) != 3:
                raise Unsupported("addcmul with a value")
            width = self._width(self.values[node])
            a, b, c = (self._operand(x, width) for x in args)
            product = self._emit("mul", self._temp(width), b, c)
            return self._emit("add", self._temp(width), a, product)
        name = _elementwise_name(node, target, module)
        if name is None:
            raise Unsupported(f"{node.op} {getattr(target, '__name__', target)}")
        if kwargs:
            raise Unsupported(f"{name} with keyword arguments {sorted(kwargs)}")
        if name == "alias":
            return self._value(args[0])
        if name == "rsub":
            name, args = "sub", (args[1], args[0])
        if len(args) != (1 if OPS[name] < OPS["add"] else 2):
            raise Unsupported(f"{name} with {len(args)} operands")
        width = self._width(self.values[node])
        return self._emit(name, self._temp(width), *(self._operand(a, width) for a in args))

    def _getitem(self, node: fx.Node) -> Any:
        """A part of a split or tuple, a feature size of a shape, or columns of a value
        (``v[..., a:b]``, ``v[:, a:b]``)."""
        source, index = node.args
        described = self.desc.get(source)
        if isinstance(described, tuple) and isinstance(index, int):
            return described[index]
        if isinstance(described, _Shape) and index in (1, -1):
            return described.features
        if isinstance(described, _Operand) and isinstance(index, tuple) and len(index) == 2:
            rows, cols = index
            if (rows is Ellipsis or rows == slice(None)) and isinstance(cols, slice):
                bounds = [self._int(b) for b in (cols.start, cols.stop, cols.step)]
                picked = range(described.width)[slice(*bounds)]
                if picked.step == 1 and len(picked) > 0 and described.width > 1:
                    col = described.col + picked.start
                    return _Operand(described.buffer, col, len(picked))
        raise Unsupported("indexing a value of the step")

    def _size(self, node: fx.Node) -> int | _Shape | None:
        """Feature sizes and arithmetic on them, which the program's key fixes; the batch size
        is not (the program serves any batch), so reading it is unsupported."""
        args = node.args
        if node.op == "call_method" and node.target == "size":
            if (
                len(args) == 2
                and args[1] in (1, -1)
                and isinstance(self.desc.get(args[0]), _Operand)
            ):
                return self.desc[args[0]].width
            raise Unsupported("a size other than the features'")
        function = node.target if node.op == "call_function" else None
        if (
            function is getattr
            and args[1:] == ("shape",)
            and isinstance(self.desc.get(args[0]), _Operand)
        ):
            return _Shape(self.desc[args[0]].width)
        if function in _INT_ARITHMETIC and all(
            isinstance(self._int(a, strict=False), int) for a in args
        ):
            return _INT_ARITHMETIC[function](*(self._int(a) for a in args))
        return None

    def _int(self, arg: Any, strict: bool = True) -> Any:
        if isinstance(arg, fx.Node):
            value = self.desc.get(arg)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if strict:
                raise Unsupported("a bound that is not a feature size")
            return None
        if arg is None or (isinstance(arg, int) and not isinstance(arg, bool)):
            return arg
        if strict:
            raise Unsupported(f"a bound {type(arg).__name__}")
        return None

    def _split(self, node: fx.Node) -> tuple[_Operand, ...]:
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        source = self._value(node.args[0])
        if dim not in (1, -1) or source.width == 1:
            raise Unsupported("a split along the batch")
        parts, col = [], source.col
        for part in self.values[node]:
            width = self._width(part)
            parts.append(_Operand(source.buffer, col, width))
            col += width
        return tuple(parts)

    def _linear(self, node: fx.Node, source: fx.Node, weight: Callable, bias: Callable | None):
        program = self.program
        a = self._value(source)  # a (B, 1) value is a one-column matrix here
        width = self._width(self.values[node])
        out = _Operand(program.buffer("product", 0, width), 0, width)
        program.weights.append(weight)
        bias_index = -1
        if bias is not None:
            program.biases.append(bias)
            bias_index = len(program.biases) - 1
        row = [OPS["linear"], out.buffer, 0, width, a.buffer, a.col, a.width]
        program.ops.append([*row, len(program.weights) - 1, bias_index, 0])
        return out

    def _linear_parts(self, node: fx.Node, module: nn.Module | None) -> tuple | None:
        """``(source, weight, bias)`` of a per-step product, weight and bias as functions of the
        call's constants (read at every call); None if ``node`` is not a product."""
        constant = self.constant
        if module is not None:
            if type(module) is not nn.Linear or len(node.args) != 3 or node.kwargs:
                return None
            cell, path = node.args[:2]
            bias = (
                (lambda env: read_attr(env[cell], path).bias) if module.bias is not None else None
            )
            return node.args[2], lambda env: read_attr(env[cell], path).weight, bias
        if node.op == "call_function" and node.target is F.linear:
            source, weight, bias = [*node.args, *[node.kwargs.get("bias")] * 2][:3]
            if weight not in constant or (bias is not None and bias not in constant):
                raise Unsupported("a product with a weight that changes per step")
            read_bias = (lambda env: env[bias]) if bias is not None else None
            return source, (lambda env: env[weight]), read_bias
        is_matmul = (node.op == "call_function" and node.target in _MATMULS) or (
            node.op == "call_method" and node.target in ("matmul", "mm")
        )
        if is_matmul:
            source, weight = node.args[:2]
            if weight not in constant or self.values[weight].dim() != 2:
                raise Unsupported("a product of two values of the step")
            return source, (lambda env: env[weight].t()), None
        return None

    def _called_module(self, node: fx.Node) -> nn.Module | None:
        """The submodule a hoisted step calls (``call_submodule(cell, path, ...)``), or None."""
        if node.op == "call_function" and node.target is call_submodule:
            module = read_attr(self.values[node.args[0]], node.args[1])
            if isinstance(module, nn.Module):
                return module
        return None

    def _output(self, output: Any) -> None:
        """Where the step's results go: a result made in this step by an elementwise operation,
        whole, is written in place (the output's rows of ``ys``, or the state leaf's next
        buffer); a state leaf that is the output itself is read back from ``ys``; anything else
        is copied there."""
        program = self.program
        if not (isinstance(output, (tuple, list)) and len(output) == 2):
            raise Unsupported("the step does not return (y, state)")
        y, state = self._value(output[0]), output[1]
        new = [state] if program.state_is_tensor else state
        old = self._state_leaves()
        if not isinstance(new, (tuple, list)) or len(new) != len(old):
            raise Unsupported("the new state's structure differs from the old one's")
        program.y_width = y.width
        if not self._retarget(y, "ys", 0):
            self._emit("copy", _Operand(program.buffer("ys", 0, y.width), 0, y.width), y)
        for j, (node, before) in enumerate(zip(new, old)):
            leaf = self._value(node)
            if leaf.width != before.width:
                raise Unsupported("a state leaf changes its width")
            if leaf == y and program.buffers[y.buffer][0] == KINDS["ys"]:
                program.buffers[before.buffer] = (KINDS["state_ys"], j, before.width)
            elif not self._retarget(leaf, "state_next", j):
                out = _Operand(program.buffer("state_next", j, before.width), 0, before.width)
                self._emit("copy", out, leaf)

    def _retarget(self, value: _Operand, kind: str, index: int) -> bool:
        """Make ``value``'s work buffer the output buffer ``kind`` if it is a whole one."""
        buffer_kind, _, width = self.program.buffers[value.buffer]
        if buffer_kind != KINDS["temp"] or value.col != 0 or value.width != width:
            return False
        self.program.buffers[value.buffer] = (KINDS[kind], index, width)
        return True

    def _state_leaves(self) -> list[_Operand]:
        kinds = (KINDS["state"], KINDS["state_ys"])
        return [
            _Operand(b, 0, width)
            for b, (k, _, width) in enumerate(self.program.buffers)
            if k in kinds
        ]

    # -- operands ------------------------------------------------------------------------------
    def _temp(self, width: int) -> _Operand:
        return _Operand(self.program.buffer("temp", 0, width), 0, width)

    def _emit(self, name: str, out: _Operand, a: _Operand, b: _Operand | None = None) -> _Operand:
        for operand in (a, b):
            if operand is not None and operand.width not in (1, out.width):
                raise Unsupported(f"{name} of widths {operand.width} and {out.width}")
        row = [OPS[name], out.buffer, out.col, out.width, a.buffer, a.col, int(a.width != 1)]
        row += [b.buffer, b.col, int(b.width != 1)] if b is not None else [0, 0, 0]
        self.program.ops.append(row)
        return out

    def _operand(self, arg: Any, width: int) -> _Operand:
        """An elementwise operand: a value of the step, a constant (a vector over the features,
        or one number), a number, or a feature size."""
        if isinstance(arg, fx.Node) and isinstance(self.desc.get(arg), int):
            arg = self.desc[arg]
        if isinstance(arg, bool) or not isinstance(arg, (int, float, fx.Node)):
            raise Unsupported(f"an operand {type(arg).__name__}")
        program = self.program
        if isinstance(arg, (int, float)):
            program.scalars.append(float(arg))
            return _Operand(program.buffer("scalar", len(program.scalars) - 1, 1), 0, 1)
        if arg not in self.constant:
            return self._value(arg)
        if arg not in self.const_slot:
            value = self.values[arg]
            if not isinstance(value, Tensor) or value.numel() not in (1, width):
                raise Unsupported("a constant that is not a vector over the features")
            if value.dim() > 2 or (value.dim() == 2 and value.shape[0] != 1):
                raise Unsupported("a constant with a batch dimension")
            program.constants.append(arg)
            slot = program.buffer("const", len(program.constants) - 1, value.numel())
            self.const_slot[arg] = _Operand(slot, 0, value.numel())
        return self.const_slot[arg]

    def _value(self, node: Any) -> _Operand:
        value = self.desc.get(node) if isinstance(node, fx.Node) else None
        if not isinstance(value, _Operand):
            raise Unsupported("an operand that is not a value of the step")
        return value

    def _width(self, value: Any) -> int:
        if not isinstance(value, Tensor) or value.dim() != 2 or value.shape[0] != self.batch:
            raise Unsupported("a value of the step that is not (B, F)")
        return value.shape[1]


@dataclass(frozen=True)
class _Shape:
    """A value's ``.shape``, of which only the feature size may be read."""

    features: int


_INT_ARITHMETIC = {
    operator.add: operator.add,
    operator.sub: operator.sub,
    operator.mul: operator.mul,
    operator.floordiv: operator.floordiv,
}


def _is_split(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _SPLITS) or (
        node.op == "call_method" and node.target in ("chunk", "split")
    )


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


def _pure(node: fx.Node) -> bool:
    """Whether a node made from constants alone gives the same value once per call."""
    if node.op == "call_function" and node.target is read_attr:
        return True
    if node.op == "call_function":
        return node.target in _CONSTANT_FUNCTIONS
    if node.op == "call_method":
        return node.target in _CONSTANT_METHODS
    return False


class _Recorder(fx.Interpreter):
    """Runs the step once and keeps every node's value. The random number generator is put
    back after, so a step that draws numbers (dropout) draws the same ones in the loop."""

    def values(self, *args: Any) -> dict[fx.Node, Any]:
        self.seen: dict[fx.Node, Any] = {}
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            self.run(*args)
        return self.seen

    def run_node(self, node: fx.Node) -> Any:
        value = super().run_node(node)
        self.seen[node] = value
        return value


# ------------------------------------------------------------------------------- running


def constants(program: Program, inputs: dict[str, Any]) -> dict[fx.Node, Any]:
    """The program's constant nodes evaluated for this call: parameters as they are now."""
    env: dict[fx.Node, Any] = {node: inputs[node.target] for node in program.inputs}
    for node in program.constant_nodes:
        args = fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
        if node.op == "call_method":
            env[node] = getattr(args[0], node.target)(*args[1:], **kwargs)
        else:
            env[node] = node.target(*args, **kwargs)
    return env


def run(
    program: Program,
    input_side: Callable[[int, int], Any],
    steps: int,
    state0: State,
    inputs: dict[str, Any],
    linear_input: tuple[Tensor, Tensor, Tensor | None] | None = None,
) -> tuple[Tensor, State] | None:
    """The program over the whole sequence: ``(ys (T, B, F_y), final state)``, or None where the
    kernels cannot run on these tensors (the caller then runs the step loop).

    ``input_side(s, e)``: the input side of steps ``[s, e)``, ``(e - s, B, F)`` or a tuple of
    them; it is asked for a few steps at a time (``dense.chunks``), each part consumed by the
    loop while it is still in the cache, and the whole sequence's is never held. ``steps``: T.
    ``inputs``: the constant inputs by name. ``linear_input``: ``(x, W, b)`` where the input side
    is one ``F.linear(x, W, b)``; where the panel kernel runs, the loop then makes each step's
    ``x_t W^T + b`` itself (``dense.panels``), with no input side computed beforehand.
    """
    leaves0 = [h.contiguous() for h in leaves(state0)]
    dtype, batch = leaves0[0].dtype, leaves0[0].shape[0]
    with torch.no_grad():
        env = constants(program, inputs)
        consts = [env[n].reshape(-1).contiguous() for n in program.constants]
        weights = [w(env).contiguous() for w in program.weights]
        biases = [b(env).contiguous() for b in program.biases]
    tensors = [*leaves0, *consts, *weights, *biases]
    ops = kernels.usable(*tensors)
    if ops is None or any(t.dtype != dtype for t in tensors):
        return None
    packed = [dense.packed_for_steps(w, batch) for w in weights]
    packed = packed if packed and all(p is not None for p in packed) else []
    fixed = (consts, weights, biases, packed, torch.tensor(program.scalars, dtype=dtype))
    ys = ops.sequence_buffer([steps, batch, program.y_width], dtype)
    state = leaves0
    panels = None
    if linear_input is not None:
        x, w_in, b_in = linear_input
        if x.dtype == dtype and x.stride(-1) == 1 and kernels.usable(x, w_in) is not None:
            panels = dense.panels(w_in)
    if panels is not None:  # one call: each step makes x_t W^T + b itself
        b_in = torch.empty(0, dtype=dtype) if b_in is None else b_in.detach().contiguous()
        state = ops.step_program(
            *program.layout, [x], state, *fixed, program.y_width, ys, [panels], [b_in]
        )[1:]
    else:
        row = batch * sum(width for kind, _, width in program.buffers if kind == KINDS["xp"])
        for s, e in dense.chunks(steps, row):
            xs = input_side(s, e)
            parts = xs if isinstance(xs, tuple) else (xs,)
            if kernels.usable(*parts) is None or any(p.dtype != dtype for p in parts):
                return None
            parts = [p if p.stride(-1) == 1 else p.contiguous() for p in parts]
            state = ops.step_program(
                *program.layout, parts, state, *fixed, program.y_width, ys[s:e], [], []
            )[1:]
    return ys, state[0] if program.state_is_tensor else from_leaves(state0, state)


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

        def input_side(s: int, e: int) -> Any:  # the hoisted part commutes with time: by steps
            return self.hoisted.project_input(x[s:e])

        graph = self.hoisted.step_graph
        return _lowered_run(self.programs, key, graph, input_side, len(x), state0, {"cell": cell})


def _lowered_run(
    cache: dict[tuple, Program | None],
    key: tuple,
    graph: fx.GraphModule,
    input_side: Callable[[int, int], Any],
    steps: int,
    state0: State,
    inputs: dict[str, Any],
    linear_input: tuple[Tensor, Tensor, Tensor | None] | None = None,
) -> tuple[Tensor, State] | None:
    """Run ``graph``'s program for ``key`` over ``steps`` steps (see :func:`run`), lowering it on
    first use (from the first step's input side); None when it is unsupported, which ``cache``
    remembers (callers check that before computing anything)."""
    if key not in cache:
        xs = input_side(0, 1)
        first = tuple(p[0] for p in xs) if isinstance(xs, tuple) else xs[0]
        try:
            cache[key] = lower(graph, first, state0, inputs)
        except Unsupported:
            cache[key] = None
    program = cache[key]
    if program is None:
        return None
    return run(program, input_side, steps, state0, inputs, linear_input)


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


# ------------------------------------------------------------------------------- pure steps


class _PureStep(nn.Module):
    """The root fx traces for a pure step function ``step_fn(xp, state, w_hh, b_hh[, w_hr])``
    (``rnnkit.cells.functional``): the step as the unroller sees it, ``(y_t, state)``."""

    def __init__(self, step_fn: Callable[..., State], tuple_state: bool) -> None:
        super().__init__()
        self.step_fn, self.tuple_state = step_fn, tuple_state

    def forward(self, xp: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, w_hr: Tensor) -> Any:
        if w_hr is None:
            new = self.step_fn(xp, state, w_hh, b_hh)
        else:
            new = self.step_fn(xp, state, w_hh, b_hh, w_hr)
        return (new[0] if self.tuple_state else new), new


@functools.cache
def _pure_step_graph(
    step_fn: Callable[..., State], tuple_state: bool, bias: bool, projection: bool
) -> fx.GraphModule:
    """The traced step, its absent arguments (no bias, no projection) fixed to None."""
    absent = {name: None for name, given in (("b_hh", bias), ("w_hr", projection)) if not given}
    root = _PureStep(step_fn, tuple_state)
    graph = fx.Tracer().trace(root, concrete_args=absent)
    # the tracer guards each fixed argument with an assertion; the key below fixes them instead
    for node in list(graph.nodes):
        if node.op == "call_function" and "assert_is_none" in getattr(node.target, "__name__", ""):
            graph.erase_node(node)
    for node in list(graph.nodes):
        if node.op == "placeholder" and not node.users and node.target not in ("xp", "state"):
            graph.erase_node(node)
    return fx.GraphModule(root, graph)


_PURE_PROGRAMS: dict[tuple, Program | None] = {}


def pure_step_sequence(
    step_fn: Callable[..., State],
    x: Tensor,
    state0: State,
    w_ih: Tensor,
    b_ih: Tensor | None,
    w_hh: Tensor,
    b_hh: Tensor | None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, State] | None:
    """A standard layer's reference step over the whole ``(T, B, I)`` input, forward only, in
    the C++ loop: ``(ys, final state)``, or None to decline (a gradient is needed, the kernels
    cannot run, or the step is unsupported), and the unroller runs the step loop."""
    parts = leaves(state0)
    weights = [w for w in (w_ih, b_ih, w_hh, b_hh, w_hr) if w is not None]
    if dense.needs_grad(x, *parts, *weights) or kernels.usable(x, *parts, *weights) is None:
        return None
    tuple_state = not isinstance(state0, Tensor)
    key = (step_fn, tuple_state, b_hh is not None, w_hr is not None)
    full_key = (*key, x.shape[-1], tuple(h.shape[-1] for h in parts), x.dtype)
    if _PURE_PROGRAMS.get(full_key, True) is None:
        return None

    def input_side(s: int, e: int) -> Tensor:  # (e - s, B, G*H): one product for those steps
        return dense.linear(x[s:e], w_ih, b_ih)

    inputs = {"w_hh": w_hh, "b_hh": b_hh, "w_hr": w_hr}
    graph = _pure_step_graph(*key)
    return _lowered_run(
        _PURE_PROGRAMS, full_key, graph, input_side, len(x), state0, inputs, (x, w_ih, b_ih)
    )
