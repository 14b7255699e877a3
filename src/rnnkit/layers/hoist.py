"""Hoist the input side of a user's plain cell out of the time loop.

A cell written as ``forward(x_t, state) -> (y_t, state)`` runs its input projection once per
step: a small matrix product forward and two more plus a bias reduction backward, T times, which
never fills a second core. The unroller already runs a cell's ``project_input(x)`` once over the
whole ``(T, B, I)`` sequence when the cell offers it; this module derives that pair from the
plain ``forward`` with ``torch.fx``:

- the forward is traced with placeholders ``x`` and ``state`` (a tuple state is unpacked by the
  tracer into its leaves);
- a node is *input side* when it depends on ``x`` only (and on parameters or constants) and is
  an operation that gives the same numbers with an extra leading time dimension: ``nn.Linear`` /
  ``F.linear`` / a matrix product with a 2-D constant, elementwise arithmetic and activations,
  ``LayerNorm``, ``chunk`` / ``split`` along the last dimension and the ``getitem`` that takes
  their parts. Every input-side tensor has the step's shape ``(B, F)``, so dim 1 and dim -1 are
  the same dimension and any other dim is the batch one (left per step);
- random operations (dropout), reductions, reshapes, indexing, size reads and everything else
  stay per step, in the order the forward runs them, so a cell with dropout draws the same
  numbers as the plain loop;
- only the values the rest of the step reads (the *frontier*) are computed over the sequence;
  the step graph gets their per-step slices.

Nothing is hoisted (the plain per-step call stays) when tracing fails (Python control flow on
tensor values, unsupported constructs), when no matrix product would move out of the loop, or
when the cell defines ``project_input``, ``step`` or ``sequence`` itself or sets ``hoist = False``.

The generated graphs hold no parameters: they take the cell as their first argument and read
its submodules and parameters when they run, so optimizer steps, ``load_state_dict`` and
``.to()`` are seen, and nothing is added to any ``state_dict``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from rnnkit.cells.kernels import dense
from rnnkit.state import State

_OWN_PATH = ("project_input", "step", "sequence")

# Elementwise operations: with an extra leading time dimension they compute the same numbers.
_ELEMENTWISE_FUNCTIONS = {
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.neg,
    operator.pos,
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
    torch.neg,
    torch.rsub,
    torch.sigmoid,
    torch.tanh,
    torch.relu,
    torch.exp,
    torch.log,
    torch.abs,
    torch.sqrt,
    torch.rsqrt,
    torch.square,
    torch.sin,
    torch.cos,
    torch.clamp,
    F.relu,
    F.gelu,
    F.silu,
    F.elu,
    F.leaky_relu,
    F.softplus,
    F.sigmoid,
    F.tanh,
    F.hardtanh,
    F.layer_norm,
}
_ELEMENTWISE_METHODS = {
    "add",
    "sub",
    "mul",
    "div",
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
    "sin",
    "cos",
    "clamp",
}
_ELEMENTWISE_MODULES = (
    nn.Sigmoid,
    nn.Tanh,
    nn.ReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.Softplus,
    nn.Identity,
    nn.LayerNorm,
)
_SPLIT_FUNCTIONS = {torch.chunk, torch.split}
_SPLIT_METHODS = {"chunk", "split"}
_MATMUL_FUNCTIONS = {torch.matmul, operator.matmul}
# Pure operations allowed on constants (parameters and what is computed from them alone): they
# run the same whether per step or once, as they see no time dimension.
_CONSTANT_METHODS = (
    _ELEMENTWISE_METHODS
    | _SPLIT_METHODS
    | {
        "t",
        "transpose",
        "permute",
        "view",
        "reshape",
        "contiguous",
        "unsqueeze",
        "squeeze",
        "to",
        "float",
        "double",
        "matmul",
        "mm",
    }
)
_CONSTANT_FUNCTIONS = (
    _ELEMENTWISE_FUNCTIONS
    | _SPLIT_FUNCTIONS
    | _MATMUL_FUNCTIONS
    | {F.linear, operator.getitem, torch.cat, torch.stack, torch.t, torch.transpose, torch.mm}
)


def read_attr(cell: nn.Module, path: tuple[str, ...]) -> Any:
    """The cell's attribute at ``path``, read when the graph runs (so it is always current)."""
    value: Any = cell
    for name in path:
        value = getattr(value, name)
    return value


def call_submodule(cell: nn.Module, path: tuple[str, ...], *args: Any, **kwargs: Any) -> Any:
    """Call the cell's submodule at ``path``, looked up when the graph runs."""
    return read_attr(cell, path)(*args, **kwargs)


class _Traced(nn.Module):
    """The root the tracer sees: ``forward(x, state)`` calls the cell, so paths start ``cell.``."""

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: Tensor, state: State) -> Any:
        return self.cell(x, state)


class HoistedCell:
    """A cell's plain forward split into ``project_input`` (whole sequence) and ``step``.

    Not a module: it holds the cell and two parameter-free generated functions, so it adds
    nothing to a ``state_dict``. ``input_side`` names the traced nodes that ``project_input``
    runs, for inspection and tests; ``step_graph`` is the step's graph module.
    """

    # the whole forward-only sequence in C++, set by rnnkit.layers.step_program.attach; None
    # (the unroller's step loop) until then
    sequence: Callable[..., Any] | None = None

    def __init__(
        self,
        cell: nn.Module,
        project: Callable[..., Any],
        step: fx.GraphModule,
        input_side: list[str],
    ) -> None:
        self.cell = cell
        self._project = project
        self.step_graph = step
        self._step = step.forward
        self.input_side = input_side

    def project_input(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        """The input side over the whole ``(T, B, I)`` input: ``(T, B, F)`` or a tuple of them."""
        return self._project(self.cell, x)

    def step(self, xp: Tensor | tuple[Tensor, ...], state: State) -> tuple[Tensor, State]:
        """The rest of the cell's forward for one step, given that step's input-side slices."""
        return self._step(self.cell, xp, state)


def wants_hoisting(cell: Any) -> bool:
    """Whether ``cell`` is a plain module cell that hoisting may split.

    Cells that bring their own fast path (``project_input``, ``step``, ``sequence``) keep it;
    a cell opts out with a ``hoist = False`` attribute.
    """
    if not isinstance(cell, nn.Module) or getattr(cell, "hoist", True) is False:
        return False
    return not any(hasattr(cell, name) for name in _OWN_PATH)


def hoist(cell: nn.Module) -> HoistedCell | None:
    """Split ``cell.forward(x_t, state)`` into an input side and a step, or None to keep it whole.

    The cell's current ``training`` flags are read as constants by the tracer (a forward may
    branch on ``self.training``), so the caller keys its cache on them.
    """
    try:
        return _split(cell)
    except Exception:  # a forward fx cannot trace (or split) keeps the plain call
        return None


def _split(cell: nn.Module) -> HoistedCell | None:
    graph = fx.Tracer().trace(_Traced(cell))
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 2:
        return None
    x_node, state_node = placeholders
    for node in nodes:
        # tensors the forward reads from outside the cell (a global) the tracer stores on its
        # root as constants; keep such cells whole rather than copy them
        if node.op in ("get_attr", "call_module") and not node.target.startswith("cell."):
            return None
    input_side, constant = _classify(cell, nodes, x_node)
    frontier = _frontier(nodes, input_side)
    if frontier is None:
        return None
    if not any(_is_matmul(cell, n) for n in input_side):
        return None  # only cheap elementwise work would move: not worth a second graph
    project = _project_graph(cell, nodes, input_side, constant, frontier, x_node)
    step = _step_graph(nodes, input_side, constant, frontier, state_node)
    return HoistedCell(
        cell,
        fx.GraphModule(nn.Module(), project).forward,
        fx.GraphModule(nn.Module(), step),
        [n.name for n in nodes if n in input_side and n is not x_node],
    )


def _node_inputs(node: fx.Node) -> list[fx.Node]:
    return list(node.all_input_nodes)


def _module(cell: nn.Module, node: fx.Node) -> nn.Module | None:
    try:
        return cell.get_submodule(node.target[len("cell.") :])
    except AttributeError:
        return None


def _is_linear(cell: nn.Module, node: fx.Node) -> bool:
    if node.op == "call_function" and node.target is F.linear:
        return True
    if node.op != "call_module":
        return False
    module = _module(cell, node)
    # a subclass that overrides forward may do anything
    return isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward


def _is_matmul(cell: nn.Module, node: fx.Node) -> bool:
    if _is_linear(cell, node):
        return True
    return (node.op == "call_function" and node.target in _MATMUL_FUNCTIONS) or (
        node.op == "call_method" and node.target == "matmul"
    )


def _split_dim(node: fx.Node) -> Any:
    """The ``dim`` of a chunk or split call (default 0)."""
    if len(node.args) > 2:
        return node.args[2]
    return node.kwargs.get("dim", 0)


def _is_split(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _SPLIT_FUNCTIONS) or (
        node.op == "call_method" and node.target in _SPLIT_METHODS
    )


def _is_elementwise(cell: nn.Module, node: fx.Node) -> bool:
    if node.kwargs.get("inplace", False) is True:
        return False
    if node.op == "call_function":
        return node.target in _ELEMENTWISE_FUNCTIONS
    if node.op == "call_method":
        return node.target in _ELEMENTWISE_METHODS
    if node.op == "call_module":
        module = _module(cell, node)
        return type(module) in _ELEMENTWISE_MODULES
    return False


def _is_constant_op(cell: nn.Module, node: fx.Node) -> bool:
    if node.op == "get_attr":
        return True
    if node.op == "call_function":
        return node.target in _CONSTANT_FUNCTIONS
    if node.op == "call_method":
        return node.target in _CONSTANT_METHODS
    return _is_linear(cell, node) or _is_elementwise(cell, node)


def _classify(
    cell: nn.Module, nodes: list[fx.Node], x_node: fx.Node
) -> tuple[set[fx.Node], dict[fx.Node, int | None]]:
    """The input-side nodes and the constant nodes (with their rank where known).

    Input-side tensors all have the step's rank, 2: ``x_t`` is ``(B, I)`` and no input-side
    operation changes the rank, except a broadcast against a constant of higher rank, which is
    refused.
    """
    input_side: set[fx.Node] = {x_node}
    tensors: set[fx.Node] = {x_node}  # input-side nodes that are tensors (not chunk tuples)
    constant: dict[fx.Node, int | None] = {}
    for node in nodes:
        if node.op in ("placeholder", "output"):
            continue
        inputs = _node_inputs(node)
        if all(n in constant for n in inputs):
            if _is_constant_op(cell, node):
                constant[node] = _constant_rank(cell, node, constant)
            continue
        if not all(n in input_side or n in constant for n in inputs):
            continue
        x_inputs = [n for n in inputs if n in input_side]
        if not x_inputs:
            continue  # made from nothing (torch.rand(...), torch.zeros(...)): per step
        if node.op == "call_function" and node.target is operator.getitem:
            source, index = node.args
            if source in input_side and source not in tensors and isinstance(index, int):
                input_side.add(node)
                tensors.add(node)
            continue
        if not all(n in tensors for n in x_inputs):
            continue
        if _is_split(node):
            if (
                node.args[0] in tensors
                and x_inputs == [node.args[0]]
                and _split_dim(node)
                in (
                    1,
                    -1,
                )
            ):
                input_side.add(node)  # a tuple: its getitem parts are the tensors
            continue
        if _is_linear(cell, node):
            # only the input runs over time; the weight and bias may be any constant
            if node.args and node.args[0] in tensors and x_inputs == [node.args[0]]:
                input_side.add(node)
                tensors.add(node)
            continue
        if _is_matmul(cell, node):
            a, b = node.args[:2]
            if a in tensors and x_inputs == [a] and constant.get(b) == 2:
                input_side.add(node)
                tensors.add(node)
            continue
        if _is_elementwise(cell, node):
            ranks = [constant[n] for n in inputs if n in constant]
            if all(r is not None and r <= 2 for r in ranks):
                input_side.add(node)
                tensors.add(node)
    return input_side, constant


def _constant_rank(
    cell: nn.Module, node: fx.Node, constant: dict[fx.Node, int | None]
) -> int | None:
    if node.op == "get_attr":
        value = read_attr(cell, tuple(node.target.split(".")[1:]))
        return value.dim() if isinstance(value, Tensor) else None
    if _is_elementwise(cell, node) and node.op != "call_module":
        ranks = [constant[n] for n in _node_inputs(node)]
        if any(r is None for r in ranks):
            return None
        return max(ranks, default=0)
    return None


def _frontier(nodes: list[fx.Node], input_side: set[fx.Node]) -> list[fx.Node] | None:
    """The input-side tensors the step reads, in graph order; None when there are none.

    A chunk tuple read whole by the step goes back to the step, with what depends on it.
    """
    while True:
        frontier = [
            n for n in nodes if n in input_side and any(u not in input_side for u in n.users)
        ]
        tuples = [n for n in frontier if _is_split(n)]
        if not tuples:
            break
        for node in tuples:
            _drop_with_users(node, input_side)
    return frontier or None


def _drop_with_users(node: fx.Node, input_side: set[fx.Node]) -> None:
    if node in input_side:
        input_side.discard(node)
        for user in node.users:
            _drop_with_users(user, input_side)


def _linear_module(cell: nn.Module, path: tuple[str, ...], x: Tensor) -> Tensor:
    """A plain ``nn.Linear`` of the cell over the whole sequence: ``dense.linear`` (oneDNN in
    forward-only runs, else ``F.linear``), the module looked up when the graph runs."""
    module = read_attr(cell, path)
    return dense.linear(x, module.weight, module.bias)


def _copy(
    graph: fx.Graph,
    node: fx.Node,
    env: dict[fx.Node, fx.Node],
    cell_ph: fx.Node,
    whole_sequence: nn.Module | None = None,
    **dim: int,
) -> fx.Node:
    """Copy ``node`` into ``graph``, reading attributes and submodules off the cell at run time.
    ``whole_sequence``: the cell, when copying its input side, whose plain linear maps then go
    through ``dense.linear``."""
    if node.op == "get_attr":
        path = tuple(node.target.split(".")[1:])
        return graph.call_function(read_attr, (cell_ph, path))
    args = fx.node.map_arg(node.args, lambda n: env[n])
    kwargs = dict(fx.node.map_arg(node.kwargs, lambda n: env[n]))
    if dim:
        # chunk / split on the step's last dim: name it -1 so that it stays the feature dim
        if len(args) > 2:
            args = (*args[:2], dim["dim"], *args[3:])
        else:
            kwargs["dim"] = dim["dim"]
    if node.op == "call_module":
        path = tuple(node.target.split(".")[1:])
        if (
            whole_sequence is not None
            and not kwargs
            and len(args) == 1
            and _is_linear(whole_sequence, node)
        ):
            return graph.call_function(_linear_module, (cell_ph, path, *args))
        return graph.call_function(call_submodule, (cell_ph, path, *args), kwargs)
    if whole_sequence is not None and node.op == "call_function" and node.target is F.linear:
        return graph.create_node(node.op, dense.linear, args, kwargs)
    return graph.create_node(node.op, node.target, args, kwargs)


def _project_graph(
    cell: nn.Module,
    nodes: list[fx.Node],
    input_side: set[fx.Node],
    constant: dict[fx.Node, int | None],
    frontier: list[fx.Node],
    x_node: fx.Node,
) -> fx.Graph:
    """``(cell, x) -> frontier values`` over the whole sequence, ``x`` being ``(T, B, I)``."""
    graph = fx.Graph()
    cell_ph = graph.placeholder("cell")
    env = {x_node: graph.placeholder("x")}
    needed = _ancestors(frontier)
    for node in nodes:
        if node in needed and node not in env and (node in input_side or node in constant):
            extra = {"dim": -1} if _is_split(node) and node in input_side else {}
            whole = cell if node in input_side else None  # constants are not per-sequence
            env[node] = _copy(graph, node, env, cell_ph, whole, **extra)
    values = [env[n] for n in frontier]
    graph.output(values[0] if len(values) == 1 else tuple(values))
    graph.lint()
    return graph


def _step_graph(
    nodes: list[fx.Node],
    input_side: set[fx.Node],
    constant: dict[fx.Node, int | None],
    frontier: list[fx.Node],
    state_node: fx.Node,
) -> fx.Graph:
    """``(cell, xp_t, state) -> (y_t, state)``: the forward, its input side read from ``xp_t``."""
    graph = fx.Graph()
    cell_ph = graph.placeholder("cell")
    xp = graph.placeholder("xp")
    env: dict[fx.Node, fx.Node] = {state_node: graph.placeholder("state")}
    if len(frontier) == 1:
        env[frontier[0]] = xp
    else:
        for i, node in enumerate(frontier):
            env[node] = graph.call_function(operator.getitem, (xp, i))
    # constants read only by the input side are not recomputed per step (those read by any
    # step node are, dead ones included: the step runs every node the plain forward runs)
    step_nodes = [n for n in nodes if n not in input_side and n not in constant]
    step_users = _ancestors(step_nodes, stop=input_side)
    for node in nodes:
        if node in env or node in input_side or node.op in ("placeholder", "output"):
            continue
        if node in constant and node not in step_users:
            continue
        env[node] = _copy(graph, node, env, cell_ph)
    output = next(n for n in nodes if n.op == "output")
    graph.output(fx.node.map_arg(output.args[0], lambda n: env[n]))
    graph.lint()
    return graph


def _ancestors(roots: list[fx.Node], stop: set[fx.Node] | None = None) -> set[fx.Node]:
    """``roots`` and every node they read, not walking past nodes in ``stop``."""
    seen: set[fx.Node] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        if stop is None or node not in stop:
            todo.extend(node.all_input_nodes)
    return seen
