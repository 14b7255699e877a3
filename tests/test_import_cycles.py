"""The data flows one way: no two rnnkit modules import each other, directly or round a loop.

Every module of ``src/rnnkit`` is parsed with ``ast`` (nothing is imported), and every import of
an rnnkit module is collected, at module level and inside functions alike: a function-level
import hides a cycle from Python at load time, not from the design. ``from rnnkit.pkg import
name`` counts as an import of the submodule ``rnnkit.pkg.name`` when that is a module, else of
``rnnkit.pkg`` (its ``__init__``); relative imports are resolved the same way.

Importing ``rnnkit.a.b`` also runs ``rnnkit/a/__init__.py`` first, so it counts as an import of
the package ``rnnkit.a`` too: a cycle that closes only through a package's ``__init__`` (which
re-exports its modules) still fails at import time when entered from the wrong side. Two such
implicit edges are left out: to ``rnnkit`` itself (every module would depend on the top-level
``__init__`` that re-exports the public API, and sit in one cycle that says nothing), and to a
package the importing module lives in (that package is already being imported when it loads).
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

Graph = dict[str, dict[str, list[str]]]
"""module -> {imported module: ["file:line", ...] where it is imported}."""


def module_names(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``src``: dotted name -> file."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` itself if it is a module, else its longest prefix that is one."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path], package: str) -> dict[str, list]:
    """The modules of ``package`` that module ``name`` (file ``path``) imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: dict[str, list[str]] = {}

    def add(target: str | None, node: ast.AST) -> None:
        if target is None:
            return
        where = f"{path.name}:{node.lineno}"
        targets = [target] if target != name else []
        # the packages that Python imports on the way to ``target`` (see the module docstring)
        parts = target.split(".")[1:-1]
        for k in range(len(parts)):
            parent = ".".join([package, *parts[: k + 1]])
            if parent != name and not name.startswith(parent + "."):
                targets.append(parent)
        for t in targets:
            places = found.setdefault(t, [])
            if where not in places:  # one line may import several names
                places.append(where)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    add(_resolve(alias.name, modules), node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # from .x import y: the base is this module's package, one level up per extra dot
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source != package and not source.startswith(package + "."):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                add(sub if sub in modules else _resolve(source, modules), node)
    return found


def import_graph(src: Path = SRC, package: str = "rnnkit") -> Graph:
    modules = module_names(src, package)
    return {name: imports_of(name, path, modules, package) for name, path in modules.items()}


def strongly_connected(graph: dict) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _shortest_cycle(graph: dict, start: str, within: set[str]) -> list[str]:
    """The shortest path ``start -> ... -> start`` inside one component (breadth first)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph.get(v, ())):
            if w not in within:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"{start} is on no cycle")  # cannot happen inside a component


def find_cycles(graph: dict) -> list[list[str]]:
    """One shortest cycle through every module that is on a cycle, without repeats.

    Each cycle is a list that starts and ends with the same module: ``[a, b, a]``. Listing every
    elementary cycle can take exponential time; a shortest cycle through each module names
    every import that has to go, which is what a failing test needs to say.
    """
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for component in strongly_connected(graph):
        for start in component:
            cycle = _shortest_cycle(graph, start, set(component))
            # the same loop found from another of its modules: compare from its smallest name
            body = cycle[:-1]
            k = body.index(min(body))
            key = tuple(body[k:] + body[:k])
            if key not in seen:
                seen.add(key)
                cycles.append([*key, key[0]])
    return cycles


def describe(cycle: list[str], graph: Graph | None = None) -> str:
    """``a -> b -> a``, with where each import is when the graph carries locations."""
    text = " -> ".join(cycle)
    if graph is None:
        return text
    where = [f"{a} imports {b} at {', '.join(graph[a][b])}" for a, b in itertools.pairwise(cycle)]
    return text + "\n    " + "\n    ".join(where)


# -- the checker can fail -------------------------------------------------------------------


def test_finds_a_cycle_in_a_small_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert describe(find_cycles(graph)[0]) == "a -> b -> c -> a"


def test_finds_every_loop_of_a_component():
    # two loops share b: a <-> b and b <-> c; both are named
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}
    assert find_cycles(graph) == [["a", "b", "a"], ["b", "c", "b"]]


def test_no_cycle_in_a_layered_graph():
    graph = {"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"a"}}
    assert strongly_connected(graph) == []
    assert find_cycles(graph) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_reads_imports_inside_functions_and_relative_ones(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/data/__init__.py": "from pkg.data.one import f\n",
            "pkg/data/one.py": "def f():\n    from pkg.data import two\n    return two\n",
            "pkg/data/two.py": "from .one import f\nfrom .. import model\n",
            "pkg/model.py": "import os\nimport pkg.data.one as one\n",
            "pkg/leaf.py": "from pkg.data import f\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert set(graph["pkg.data"]) == {"pkg.data.one"}
    assert set(graph["pkg.data.one"]) == {"pkg.data.two"}  # inside a function
    assert set(graph["pkg.data.two"]) == {"pkg.data.one", "pkg.model"}  # relative
    assert graph["pkg.data.two"]["pkg.model"] == ["two.py:2"]
    # the module, and the package whose __init__ runs on the way to it
    assert set(graph["pkg.model"]) == {"pkg.data.one", "pkg.data"}
    assert set(graph["pkg.leaf"]) == {"pkg.data"}  # a name, not a module: the __init__
    assert find_cycles(graph) == [
        ["pkg.data", "pkg.data.one", "pkg.data.two", "pkg.model", "pkg.data"],
        ["pkg.data.one", "pkg.data.two", "pkg.data.one"],
        ["pkg.data.one", "pkg.data.two", "pkg.model", "pkg.data.one"],
    ]


def test_a_cycle_through_a_package_init(tmp_path):
    # model imports search.beam only, but that runs search/__init__, which imports stepper,
    # which needs model: the import fails when entered from search.beam
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/model.py": "from pkg.search.beam import beam\n",
            "pkg/search/__init__.py": "from pkg.search.stepper import Stepper\n",
            "pkg/search/beam.py": "def beam(): ...\n",
            "pkg/search/stepper.py": "from pkg.model import Model\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert set(graph["pkg.model"]) == {"pkg.search.beam", "pkg.search"}
    assert set(graph["pkg.search.stepper"]) == {"pkg.model"}  # not its own package
    assert find_cycles(graph) == [["pkg.model", "pkg.search", "pkg.search.stepper", "pkg.model"]]


def test_a_package_without_cycles_passes(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.top import run\n",
            "pkg/low.py": "X = 1\n",
            "pkg/top.py": "def run():\n    from pkg.low import X\n    return X\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert set(graph["pkg"]) == {"pkg.top"}
    assert find_cycles(graph) == []


# -- the real package -----------------------------------------------------------------------


def test_graph_sees_the_package():
    graph = import_graph()
    assert "rnnkit.layers.recurrent" in graph
    assert graph["rnnkit.cli.main"], "the CLI imports library modules; the parser saw none"


def test_rnnkit_has_no_import_cycles():
    graph = import_graph()
    cycles = find_cycles(graph)
    if cycles:
        pytest.fail(
            f"{len(cycles)} import cycle(s) in rnnkit:\n"
            + "\n".join(describe(c, graph) for c in cycles),
            pytrace=False,
        )


def _imports_between(graph: Graph, lower: str, upper: str) -> list[str]:
    """``module -> imported (file:line)`` for every import from package ``lower`` of ``upper``."""

    def inside(name: str, pkg: str) -> bool:
        return name == pkg or name.startswith(pkg + ".")

    return [
        f"{a} -> {b} ({', '.join(where)})"
        for a, targets in sorted(graph.items())
        if inside(a, lower)
        for b, where in sorted(targets.items())
        if inside(b, upper)
    ]


def test_layer_check_sees_an_upward_import():
    graph = {"p.diagnose.lm": {"p.tasks.runs": ["lm.py:3"], "p.state": ["lm.py:2"]}}
    assert _imports_between(graph, "p.diagnose", "p.tasks") == [
        "p.diagnose.lm -> p.tasks.runs (lm.py:3)"
    ]
    assert _imports_between(graph, "p.diagnose", "p.cli") == []


@pytest.mark.parametrize(
    "lower, upper",
    [
        ("rnnkit.diagnose", "rnnkit.tasks"),  # diagnose takes a model; it never loads a run
        ("rnnkit.diagnose", "rnnkit.cli"),
        ("rnnkit.tasks", "rnnkit.cli"),
        ("rnnkit.datasets", "rnnkit.tasks"),
    ],
)
def test_no_module_imports_a_layer_above_it(lower, upper):
    assert _imports_between(import_graph(), lower, upper) == []
