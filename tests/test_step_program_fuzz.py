"""Randomized parity of the step programs (``layers/step_program.py``) with the plain loop.

Every case draws a cell from a small grammar (``recipe``) with a seeded ``random.Random``: a
state that is one tensor or an ``(h, c)`` tuple, random widths (1 included), per-step products
of the state (``nn.Linear`` with and without bias, ``F.linear`` on parameters, ``v @ self.w``),
``chunk`` / ``split``, unary and binary elementwise operations in all three spellings (function,
method, module), numbers, parameter vectors and scalars, ``(B, 1)`` values, and an output that
differs from the state. The same layer with ``hoist=False`` is the reference: it runs the cell's
own Python step, so the program, the hoisting and the C++ interpreter are all under test.
A failing seed prints its recipe (``-k`` the seed to replay it).
"""

from __future__ import annotations

import contextlib
import copy
import random

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit
from rnnkit.layers import step_program


@pytest.fixture(autouse=True)
def _kernels(built):
    """Every test here needs the C++ kernels: built on first use, skipped where they cannot be."""
    return built


# Unary operations and their three spellings; the ones that need a tame argument (finite in
# both paths, no cancellation that would magnify rounding) get one first.
UNARY = ["neg", "sigmoid", "tanh", "relu", "exp", "log", "abs", "sqrt", "rsqrt", "square"]
UNARY += ["silu", "reciprocal"]
UNARY_FUNCTIONS = {
    "neg": [torch.neg, lambda v: -v],
    "sigmoid": [torch.sigmoid, F.sigmoid],
    "tanh": [torch.tanh, F.tanh],
    "relu": [torch.relu, F.relu],
    "exp": [torch.exp],
    "log": [torch.log],
    "abs": [torch.abs],
    "sqrt": [torch.sqrt],
    "rsqrt": [torch.rsqrt],
    "square": [torch.square],
    "silu": [F.silu],
    "reciprocal": [torch.reciprocal],
}
UNARY_MODULES = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}
# positive and away from 0 (log, sqrt, rsqrt, reciprocal) or bounded (exp)
NEEDS_POSITIVE = {"log", "sqrt", "rsqrt", "reciprocal"}
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum"]
BINARY_FUNCTIONS = {
    "add": [torch.add, lambda a, b: a + b],
    "sub": [torch.sub, lambda a, b: a - b],
    "mul": [torch.mul, lambda a, b: a * b],
    "div": [torch.div, lambda a, b: a / b],
    "maximum": [torch.maximum],
    "minimum": [torch.minimum],
}


def make_recipe(rng: random.Random, *, unsupported: str | None = None) -> dict:
    """A random cell: sizes, state structure and the list of steps ``FuzzCell.forward`` runs.

    Values are numbered in the order they are made: 0 is the hoisted input side (width ``P``),
    1 is ``h`` (``H``), 2 is ``c`` (``C``, tuple states only). Each step appends values.
    """
    H = rng.choice([1, 2, 3, 4, 5, 8, 16, 33, 40])
    In = rng.choice([1, 2, 3, 7, 16, 40])
    tuple_state = rng.random() < 0.5
    C = rng.choice([H, 2 * H]) if tuple_state else 0
    P = rng.choice([H, 2 * H, 3 * H])
    widths = [P, H] + ([C] if tuple_state else [])
    steps: list[tuple] = []
    params: dict[str, tuple[int, ...]] = {}
    linears: dict[str, tuple[int, int, bool]] = {}

    def new(kind: str, shape_or_spec) -> str:
        name = f"{kind}{len(params) + len(linears)}"
        if kind == "lin":
            linears[name] = shape_or_spec
        else:
            params[name] = shape_or_spec
        return name

    def product(i: int, out: int) -> None:
        """A per-step product of value ``i`` to width ``out`` in one of three spellings."""
        w = widths[i]
        form = rng.choice(["linear", "flinear", "matmul", "matmul_t"])
        if form == "linear":
            steps.append(("linear", i, new("lin", (w, out, rng.random() < 0.6))))
        elif form == "flinear":
            bias = new("b", (out,)) if rng.random() < 0.6 else None
            # a weight computed from the parameter (once per call) in one case of three
            steps.append(("flinear", i, new("w", (out, w)), bias, rng.random() < 0.33))
        elif form == "matmul":
            steps.append(("matmul", i, new("w", (w, out))))
        else:
            steps.append(("matmul_t", i, new("w", (out, w))))  # h @ self.w.t()
        widths.append(out)

    def of_width(width: int) -> list[int]:
        return [k for k, w in enumerate(widths) if w == width]

    # the state always goes through a product, split into parts of width H
    k = rng.choice([1, 2, 3])
    product(1, k * H)
    if k > 1:
        split(steps, widths, len(widths) - 1, k, H, rng)
    if tuple_state and rng.random() < 0.5:
        product(2, H)
    if P > H:
        split(steps, widths, 0, P // H, H, rng)
    for _ in range(rng.randint(3, 9)):
        r = rng.random()
        if r < 0.15:
            product(rng.choice(of_width(H)), rng.choice([H, 2 * H, 1]))
            if widths[-1] == 2 * H:
                split(steps, widths, len(widths) - 1, 2, H, rng)
        elif r < 0.5:
            op = rng.choice(UNARY)
            i = rng.choice(of_width(H) + of_width(1))
            spelling = rng.randrange(len(UNARY_FUNCTIONS[op]) + 2)
            steps.append(("unary", op, i, spelling))
            widths.append(widths[i])
        else:
            op = rng.choice(BINARY)
            i = rng.choice(of_width(H))
            kind = rng.choice(["value", "value", "row", "number", "vector", "scalar"])
            if kind == "value":
                other: tuple = ("value", rng.choice(of_width(H)))
            elif kind == "row":
                ones = of_width(1)
                if not ones:
                    product(rng.choice(of_width(H)), 1)
                    ones = [len(widths) - 1]
                other = ("value", rng.choice(ones))
            elif kind == "number":
                if op in ("maximum", "minimum"):
                    op = rng.choice(["add", "mul", "sub"])
                other = ("number", rng.choice([0.5, -1.5, 2, 3.0]))
            elif kind == "vector":
                other = (rng.choice(["param", "derived"]), new("v", (H,)))
            else:
                other = (rng.choice(["param", "derived"]), new("s", ()))
            steps.append(("binary", op, i, other, rng.random() < 0.5, rng.randrange(2)))
            widths.append(H)
    if unsupported is not None:
        # on h itself: a dropout on the input side would draw its numbers in another order
        steps.append(("unsupported", unsupported, 1))
        widths.append(H)
    if tuple_state and C != H:
        product(rng.choice(of_width(H)), C)  # c's update needs a value of c's width
    # the new state from values made in the step, bounded by tanh so that T steps stay tame
    first = 3 if tuple_state else 2  # the first value the step makes
    made = [k for k in of_width(H) if k >= first or (k == 0 and P == H)]
    h_from = rng.sample(made, min(len(made), rng.randint(1, 3)))
    c_from = None
    if tuple_state:
        c_from = len(widths) - 1 if C != H else rng.choice(made)
    y_kind = rng.choice(["state", "value", "scaled"])
    y_from = rng.choice(made)
    # every value is used: the output gets the rest (a dead product is tested on its own)
    used = {*h_from, c_from, *([y_from] if y_kind != "state" else [])}
    for step in steps:
        used.add(step[2] if step[0] in ("unary", "binary", "unsupported") else step[1])
        if step[0] == "binary" and step[3][0] == "value":
            used.add(step[3][1])
    rest = [k for k in range(first, len(widths)) if k not in used and widths[k] in (H, 1)]
    rest += [0] if 0 not in used else []  # a step that ignores x_t has nothing to hoist
    return dict(
        H=H, I=In, C=C, P=P, tuple_state=tuple_state, steps=steps, params=params,
        linears=linears, h_from=h_from, c_from=c_from, y_kind=y_kind, y_from=y_from, rest=rest,
    )  # fmt: skip


def split(steps, widths, i, k, H, rng) -> None:
    """Value ``i`` (width ``k * H``) into ``k`` parts of width H: chunk or split, dim 1 or -1."""
    dim = rng.choice([1, -1])
    form = rng.choice(["chunk", "chunk_method", "split", "split_method"])
    steps.append((form, i, k, H, dim))
    widths.extend([H] * k)


class FuzzCell(nn.Module):
    """A plain cell that runs a recipe: a Python loop over constants, which fx unrolls."""

    def __init__(self, input_size: int, hidden_size: int, recipe: dict) -> None:
        super().__init__()
        self.recipe = recipe
        r = recipe
        self.inp = nn.Linear(input_size, r["P"])
        self.lins = nn.ModuleDict(
            {n: nn.Linear(a, b, bias=c) for n, (a, b, c) in r["linears"].items()}
        )
        for name, shape in r["params"].items():
            setattr(
                self, name, nn.Parameter(torch.randn(shape) * (0.4 if len(shape) == 2 else 0.7))
            )
        self.modules_ = nn.ModuleDict({op: m() for op, m in UNARY_MODULES.items()})
        self.drop = nn.Dropout(0.3)

    def initial_state(self, batch_size: int, *, dtype=None, device=None):
        h = torch.zeros(batch_size, self.recipe["H"], dtype=dtype, device=device)
        if not self.recipe["tuple_state"]:
            return h
        return h, torch.zeros(batch_size, self.recipe["C"], dtype=dtype, device=device)

    def operand(self, vals, other):
        kind, what = other
        if kind == "value":
            return vals[what]
        if kind == "number":
            return what
        if kind == "derived":  # computed from a parameter alone: a constant of the program
            return torch.sigmoid(getattr(self, what)) * 2
        return getattr(self, what)

    def forward(self, x: Tensor, state):
        r = self.recipe
        if r["tuple_state"]:
            h, c = state
            vals = [self.inp(x), h, c]
        else:
            vals = [self.inp(x), state]
        for step in r["steps"]:
            form = step[0]
            if form == "linear":
                vals.append(self.lins[step[2]](vals[step[1]]))
            elif form == "flinear":
                bias = None if step[3] is None else getattr(self, step[3])
                weight = getattr(self, step[2]) * 0.5 if step[4] else getattr(self, step[2])
                vals.append(F.linear(vals[step[1]], weight, bias))
            elif form == "matmul":
                vals.append(vals[step[1]] @ getattr(self, step[2]))
            elif form == "matmul_t":
                vals.append(vals[step[1]] @ getattr(self, step[2]).t())
            elif form in ("chunk", "chunk_method", "split", "split_method"):
                _, i, k, H, dim = step
                v = vals[i]
                if form == "chunk":
                    parts = torch.chunk(v, k, dim)
                elif form == "chunk_method":
                    parts = v.chunk(k, dim=dim)
                elif form == "split":
                    parts = torch.split(v, H, dim)
                else:
                    parts = v.split([H] * k, dim)
                vals.extend(parts[j] for j in range(k))
            elif form == "unary":
                _, op, i, spelling = step
                v = vals[i]
                if op in NEEDS_POSITIVE:
                    v = torch.sigmoid(v) + 0.5 if spelling % 2 else v.abs() + 1
                elif op in ("exp", "square"):
                    v = torch.tanh(v)
                functions = UNARY_FUNCTIONS[op]
                if spelling < len(functions):
                    out = functions[spelling](v)
                elif spelling == len(functions) and op in UNARY_MODULES:
                    out = self.modules_[op](v)
                else:
                    out = getattr(v, op)() if op != "silu" else F.silu(v)
                vals.append(out)
            elif form == "binary":
                # tensors are fx proxies while tracing: what each operand is comes from the recipe
                _, op, i, other, swap, spelling = step
                a, b = vals[i], self.operand(vals, other)
                if op == "div" and other[0] != "number":
                    b = torch.sigmoid(b) + 0.5  # a denominator away from 0 in both paths
                number_first = swap and op != "div" and other[0] == "number"
                if swap and op != "div":
                    a, b = b, a
                if number_first:
                    out = BINARY_FUNCTIONS[op][-1](a, b)  # the operator: 2 - h
                elif spelling == 1:
                    out = getattr(a, op)(b)
                else:
                    out = BINARY_FUNCTIONS[op][0](a, b)
                vals.append(out)
            elif form == "unsupported":
                _, what, i = step
                v = vals[i]
                if what == "dropout":
                    out = self.drop(v)
                elif what == "sum":
                    out = v * torch.tanh(v.sum(-1, keepdim=True))
                else:  # a batch row broadcast over the batch (columns would lower)
                    out = v + v[:1]
                vals.append(out)
        new_h = vals[r["h_from"][0]]
        for k in r["h_from"][1:]:
            new_h = new_h + vals[k]
        new_h = torch.tanh(new_h)
        y = {
            "state": new_h,
            "value": vals[r["y_from"]],
            "scaled": torch.sigmoid(vals[r["y_from"]]) * 2 - new_h,
        }[r["y_kind"]]
        for k in r["rest"]:
            y = y + 0.1 * torch.tanh(vals[k])
        if r["tuple_state"]:
            return y, (new_h, 0.5 * c + torch.tanh(vals[r["c_from"]]))
        return y, new_h


def build(recipe: dict, *, num_layers: int, bidirectional: bool, dtype, seed: int):
    """The same layer twice, the same weights: hoisted (programs allowed) and plain."""
    torch.manual_seed(seed)
    fast = rnnkit.Recurrent(
        FuzzCell, recipe["I"], recipe["H"], num_layers, bidirectional=bidirectional,
        dtype=dtype, recipe=recipe,
    )  # fmt: skip
    plain = copy.deepcopy(fast)
    plain.hoist = False
    return fast, plain


def programs(rnn) -> list:
    """Every program the layer's hoisted cells built (None: the step was unsupported)."""
    hoisted = [h for h in rnn.__dict__.get("_hoisted", {}).values() if h is not None]
    return [p for h in hoisted for p in h.sequence.programs.values()]


def inputs(recipe, fast, rng: random.Random, dtype):
    T, B = rng.randint(2, 12), rng.choice([1, 3, 8, 17, 33, 64])
    x = torch.randn(T, B, recipe["I"], dtype=dtype)
    LD = fast.num_layers * (2 if fast.bidirectional else 1)
    if recipe["tuple_state"]:
        hx = (
            torch.randn(LD, B, recipe["H"], dtype=dtype) * 0.5,
            torch.randn(LD, B, recipe["C"], dtype=dtype) * 0.5,
        )
    else:
        hx = torch.randn(LD, B, recipe["H"], dtype=dtype) * 0.5
    return x, hx


def assert_close(a, b, dtype) -> None:
    """Leaf by leaf, with a tolerance relative to the values' magnitude."""
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert_close(u, v, dtype)
        return
    assert torch.isfinite(b).all(), "the reference is not finite: tame the recipe"
    scale = max(1.0, b.abs().max().item())
    tol = (2e-5 if dtype == torch.float32 else 1e-10) * scale
    torch.testing.assert_close(a, b, atol=tol, rtol=tol / scale * 10)


def check(seed: int, *, unsupported: str | None = None) -> None:
    """One random cell: the program's run (two calls, the second with another batch and
    length, which reuses the program built by the first) against the plain loop."""
    rng = random.Random(seed)
    recipe = make_recipe(rng, unsupported=unsupported)
    dtype = rng.choice([torch.float32, torch.float64])
    layers, bidirectional = rng.choice([1, 1, 2]), rng.random() < 0.4
    fast, plain = build(
        recipe, num_layers=layers, bidirectional=bidirectional, dtype=dtype, seed=seed
    )
    if unsupported == "dropout":
        fast.train(), plain.train()
    else:
        fast.eval(), plain.eval()
    for _ in range(2):
        compare(seed, recipe, fast, plain, inputs(recipe, fast, rng, dtype), dtype, unsupported)


def compare(seed, recipe, fast, plain, data, dtype, unsupported) -> None:
    x, hx = data
    layers, bidirectional = fast.num_layers, fast.bidirectional
    context = f"seed {seed}: {dtype}, L{layers}, bi={bidirectional}, x {tuple(x.shape)}, {recipe}"
    with torch.no_grad():
        torch.manual_seed(seed)
        with counting_runs() as ran:
            got = fast(x, hx)
        torch.manual_seed(seed)
        want = plain(x, hx)
    built = programs(fast)
    assert built, f"no hoisted cell tried a program: {context}"
    if unsupported is None:
        assert all(p is not None for p in built), f"a supported step was declined: {context}"
        # one run per layer and direction: the C++ loop ran, no silent fallback
        assert ran == [True] * len(fast.cells), f"the programs did not all run: {context}"
    elif unsupported is not None:
        assert all(p is None for p in built), f"an unsupported step was lowered: {context}"
    try:
        assert_close(got, want, dtype)
    except AssertionError as error:
        if unsupported == "dropout":
            raise AssertionError(f"{context}\n{error}") from None
        if dtype == torch.float64:
            # a recurrence with gain > 1 magnifies every rounding difference: then the
            # program may differ from the loop by about what a rounding-sized change of the
            # input changes the loop's own result
            with torch.no_grad():
                nudged = plain(x * (1 + 4e-16), hx)
            for a, b, n in zip(flat(got), flat(want), flat(nudged)):
                err, spread = (a - b).abs().max().item(), (n - b).abs().max().item()
                assert err <= 10 * spread + 1e-10 * max(1.0, b.abs().max().item()), (
                    f"{context}\nfloat64 program off the loop by {err}, the loop moves by "
                    f"{spread} for a rounding-sized change of x"
                )
            return
        # an ill-conditioned recipe (products of squares, max/min near ties) loses more than
        # the tolerance in float32 in both paths: then the program must be as close to the
        # float64 loop as the float32 loop is
        exact = copy.deepcopy(plain).double()
        with torch.no_grad():
            ref = exact(
                x.double(), tuple(h.double() for h in hx) if recipe["tuple_state"] else hx.double()
            )
        for a, b, r in zip(flat(got), flat(want), flat(ref)):
            err, own = (a.double() - r).abs().max().item(), (b.double() - r).abs().max().item()
            assert err <= 2 * own + 2e-5 * max(1.0, r.abs().max().item()), (
                f"{context}\nfloat32 program off the float64 loop by {err}, "
                f"the float32 loop by {own}"
            )


@contextlib.contextmanager
def counting_runs():
    """Record whether each ``step_program.run`` call ran the kernel (True) or declined."""
    ran: list[bool] = []
    real = step_program.run

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        ran.append(result is not None)
        return result

    step_program.run = spy
    try:
        yield ran
    finally:
        step_program.run = real


def flat(value) -> list[Tensor]:
    """The tensors of an output ``(y, state)``, in order."""
    if isinstance(value, Tensor):
        return [value]
    return [t for v in value for t in flat(v)]


@pytest.mark.parametrize("seed", range(48))
def test_random_supported_cells_match_the_plain_loop(seed, two_threads):
    check(seed)


@pytest.mark.parametrize("what", ["dropout", "sum", "batch-index"])
@pytest.mark.parametrize("seed", range(3))
def test_unsupported_cells_decline_and_match(seed, what, two_threads):
    check(1000 + seed, unsupported=what)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(48, 448))
def test_random_supported_cells_match_the_plain_loop_many(seed, two_threads):
    check(seed)


class Pair(nn.Module):
    """Base of the wiring cells below: an (h, c) state, one product of h, two gates."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, 2 * hidden_size)
        self.hh = nn.Linear(hidden_size, 2 * hidden_size)
        self.hidden_size = hidden_size

    def initial_state(self, batch_size: int, *, dtype=None, device=None):
        zero = torch.zeros(batch_size, self.hidden_size, dtype=dtype, device=device)
        return zero, zero

    def gates(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        a, b = (self.ih(x) + self.hh(h)).chunk(2, 1)
        return a, b


class OutputIsC(Pair):
    def forward(self, x, state):
        h, c = state
        a, b = self.gates(x, h)
        c = 0.5 * c + torch.tanh(a)
        return c, (torch.sigmoid(b) * torch.tanh(c), c)


class SameLeafTwice(Pair):
    def forward(self, x, state):
        h, c = state
        a, b = self.gates(x, h + c)
        h = torch.tanh(a) * torch.sigmoid(b)
        return h, (h, h)


class SwappedLeaves(Pair):
    def forward(self, x, state):
        h, c = state
        a, b = self.gates(x, h)
        return torch.tanh(a), (c, torch.tanh(a + b))


class OutputIsOldH(Pair):
    def forward(self, x, state):
        h, c = state
        a, b = self.gates(x, h)
        return h, (torch.tanh(a) + c * 0.5, torch.tanh(b))


class PassThrough(Pair):
    def forward(self, x, state):
        h, c = state
        a, b = self.gates(x, h)
        return torch.tanh(a) * c, (torch.tanh(b), c)


@pytest.mark.parametrize(
    "cell", [OutputIsC, SameLeafTwice, SwappedLeaves, OutputIsOldH, PassThrough]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_wiring_matches(cell, dtype, two_threads):
    """Outputs and state leaves that alias each other, swap, pass through or are the old h:
    the program writes the next state while it reads this one."""
    torch.manual_seed(0)
    fast = rnnkit.Recurrent(cell, 5, 7, 2, bidirectional=True, dtype=dtype)
    plain = copy.deepcopy(fast)
    plain.hoist = False
    x = torch.randn(6, 33, 5, dtype=dtype)
    hx = (torch.randn(4, 33, 7, dtype=dtype), torch.randn(4, 33, 7, dtype=dtype))
    with torch.no_grad(), counting_runs() as ran:
        got = fast(x, hx)
    with torch.no_grad():
        want = plain(x, hx)
    assert ran == [True] * 4
    assert_close(got, want, dtype)


@pytest.mark.parametrize("seed", range(6))
def test_lengths_batch_first_and_unbatched_inputs_match(seed, two_threads):
    """The other ways in: padded sequences with lengths, batch_first, one unbatched sequence."""
    rng = random.Random(2000 + seed)
    recipe = make_recipe(rng)
    dtype = rng.choice([torch.float32, torch.float64])
    bidirectional = rng.random() < 0.5
    fast, plain = build(recipe, num_layers=2, bidirectional=bidirectional, dtype=dtype, seed=seed)
    fast.eval(), plain.eval()
    x, hx = inputs(recipe, fast, rng, dtype)
    lengths = torch.randint(1, x.shape[0] + 1, (x.shape[1],))
    lengths[0] = x.shape[0]
    first = tuple(h[:, 0] for h in hx) if recipe["tuple_state"] else hx[:, 0]
    with torch.no_grad():
        assert_close(fast(x, hx, lengths=lengths), plain(x, hx, lengths=lengths), dtype)
        assert_close(fast(x[:, 0], first), plain(x[:, 0], first), dtype)
        for rnn in (fast, plain):
            rnn.batch_first = True
        xb = x.transpose(0, 1).contiguous()
        assert_close(fast(xb, hx), plain(xb, hx), dtype)


def strided(t: Tensor) -> Tensor:
    """The same values, every row's features every other element (not contiguous)."""
    return torch.cat([t, t], -1)[..., : t.shape[-1]]


@pytest.mark.parametrize("seed", range(6))
def test_strided_inputs_thread_counts_and_a_dtype_switch(seed):
    """Non-contiguous x and hx, 1 to 4 threads, then the layer moved to the other dtype (a
    program per dtype, the first one kept)."""
    rng = random.Random(4000 + seed)
    recipe = make_recipe(rng)
    dtype = rng.choice([torch.float32, torch.float64])
    fast, plain = build(recipe, num_layers=2, bidirectional=seed % 2 == 1, dtype=dtype, seed=seed)
    fast.eval(), plain.eval()
    x, hx = inputs(recipe, fast, rng, dtype)
    hn = tuple(strided(h) for h in hx) if recipe["tuple_state"] else strided(hx)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1 + seed % 4)
        compare(seed, recipe, fast, plain, (strided(x), hn), dtype, None)
        other = torch.float64 if dtype == torch.float32 else torch.float32
        fast.to(other), plain.to(other)
        compare(seed, recipe, fast, plain, inputs(recipe, fast, rng, other), other, None)
    finally:
        torch.set_num_threads(before)


def test_program_reads_parameters_updated_in_place(two_threads):
    recipe = make_recipe(random.Random(7))
    for dtype in (torch.float32, torch.float64):
        fast, plain = build(recipe, num_layers=2, bidirectional=True, dtype=dtype, seed=7)
        x, hx = inputs(recipe, fast, random.Random(8), dtype)
        with torch.no_grad():
            assert_close(fast(x, hx), plain(x, hx), dtype)
            assert programs(fast) and all(p is not None for p in programs(fast))
            for rnn in (fast, plain):
                for p in rnn.parameters():
                    p.add_(0.1)
            assert_close(fast(x, hx), plain(x, hx), dtype)


def test_kernels_off_gives_the_same_numbers(monkeypatch, two_threads):
    """RNNKIT_KERNELS=0: the hoisted layer declines every program and runs its Python loop."""
    recipe = make_recipe(random.Random(11))
    fast, _ = build(recipe, num_layers=1, bidirectional=False, dtype=torch.float64, seed=11)
    x, hx = inputs(recipe, fast, random.Random(12), torch.float64)
    with torch.no_grad():
        got = fast(x, hx)
        assert programs(fast) and all(p is not None for p in programs(fast))
        monkeypatch.setenv("RNNKIT_KERNELS", "0")
        assert_close(got, fast(x, hx), torch.float64)


# ------------------------------------------------------------------ found by the fuzzing (fixed)


class DeadProduct(nn.Module):
    """A per-step product on a parameter whose value the step never uses."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size)
        self.w = nn.Parameter(torch.randn(hidden_size, hidden_size))

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        F.linear(h, self.w)  # left over, unused
        h = torch.tanh(self.ih(x) + self.hh(h))
        return h, h


def test_dead_product_on_a_parameter_keeps_hoisting():
    fast = rnnkit.Recurrent(DeadProduct, 3, 4)
    with torch.no_grad():
        fast(torch.randn(5, 2, 3))
    assert programs(fast) and all(p is not None for p in programs(fast))


class OneWide(nn.Module):
    """A per-step product of a computed (B, 1) value: Linear(H, 1) then Linear(1, H)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size)
        self.gate = nn.Linear(hidden_size, 1)
        self.back = nn.Linear(1, hidden_size)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.tanh(self.ih(x) + self.hh(h) + self.back(torch.tanh(self.gate(h))))
        return h, h


def test_product_of_a_one_wide_value_is_lowered():
    fast = rnnkit.Recurrent(OneWide, 3, 4)
    plain = copy.deepcopy(fast)
    plain.hoist = False
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        assert_close(fast(x), plain(x), torch.float32)
    assert programs(fast) and all(p is not None for p in programs(fast))


class DropState(DeadProduct):
    """A dropout on the state: the step stays in Python (dropout is not lowered)."""

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.tanh(self.ih(x) + self.hh(F.dropout(h, 0.5, self.training)))
        return h, h


def test_lowering_draws_no_random_numbers():
    torch.manual_seed(0)
    fast = rnnkit.Recurrent(DropState, 3, 4)
    plain = copy.deepcopy(fast)
    plain.hoist = False
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        torch.manual_seed(1)
        got = fast(x)
        torch.manual_seed(1)
        want = plain(x)
    assert programs(fast) == [None]  # declined: the dropout stays in the Python step
    assert_close(got, want, torch.float32)
