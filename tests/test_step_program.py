"""Step programs: a cell's forward-only time loop in C++ against the Python step loop.

``rnnkit.layers.step_program`` lowers a hoisted user cell's step, and the standard layers'
reference step, to the program ``cells/kernels/step_program.cpp`` runs. Where nothing needs a
gradient the unroller takes it; these tests check that it ran (a spy on the kernels' ops) and
that it gives the plain loop's numbers, and that everything it cannot do goes back to the loop.
(tests/test_step_program_fuzz.py tries random cells.)
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import GRUStyle, use
from torch import Tensor, nn

import rnnkit
from rnnkit.layers import step_program
from rnnkit.layers.step_program import Unsupported, lower


class LSTMStyle(nn.Module):
    """A tuple state, an output that is not the state, a bias vector as an operand, a number,
    a module activation, a product with a raw 2-D parameter and a split by sizes."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, 4 * hidden_size, bias=False)
        self.w_hh = nn.Parameter(torch.randn(hidden_size, 4 * hidden_size) * 0.3)
        self.b = nn.Parameter(torch.randn(4 * hidden_size) * 0.2)
        self.scale = nn.Parameter(torch.tensor(0.7))
        self.act = nn.Tanh()

    def initial_state(self, batch_size: int, *, dtype=None, device=None):
        zero = torch.zeros(batch_size, self.hidden_size, dtype=dtype, device=device)
        return zero, zero

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]):
        h, c = state
        H = self.hidden_size
        gates = self.ih(x) + h @ self.w_hh + self.b
        i, f, g, o = torch.split(gates, [H, H, H, H], dim=1)
        c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * self.act(g)
        h = torch.sigmoid(o) * torch.tanh(c) * self.scale
        return h.relu() - 0.5 * h.neg().relu(), (h, c)


class Gated(nn.Module):
    """A (B, 1) gate broadcast over the row, F.linear on the state with a computed weight,
    sizes read from a value, and column slices."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, 2 * hidden_size)
        self.w = nn.Parameter(torch.randn(2 * hidden_size, hidden_size) * 0.3)
        self.gate = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        a = self.ih(x) + F.linear(h, self.w * 0.5)
        H = a.size(-1) // 2
        k = torch.sigmoid(self.gate(h))  # (B, 1)
        cand = torch.tanh(a[..., :H]) * torch.sigmoid(a[:, H:])
        h = k * h + (1 - k) * cand
        return h, h


class Dropping(GRUStyle):
    """Dropout in the step: random per step, which a program cannot do."""

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        h2, _ = super().forward(x, h)
        h2 = F.dropout(h2, 0.3, self.training)
        return h2, h2


class InPlace(GRUStyle):
    """An in-place activation module: it changes the value it is given, which a later
    operation then reads."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        h2, _ = super().forward(x, h)
        a = h2 * 1.5
        b = self.act(a)
        return a + b, a + b


class Summing(GRUStyle):
    """A reduction over the features: unsupported, so the loop runs."""

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        h2, _ = super().forward(x, h)
        h2 = h2 - h2.sum(-1, keepdim=True) / h2.size(-1)
        return h2, h2


def layers(cell, input_size=5, hidden_size=6, dtype=torch.float64, **kwargs):
    """The same Recurrent twice, the second with hoist=False: the plain step loop."""
    torch.manual_seed(0)
    fast = rnnkit.Recurrent(cell, input_size, hidden_size, dtype=dtype, **kwargs)
    with torch.no_grad():  # away from the default initialisation, which could hide mistakes
        for p in fast.parameters():
            p.add_(0.2 * torch.randn_like(p))
    plain = copy.deepcopy(fast)
    plain.hoist = False
    return fast, plain


def assert_same(a, b, dtype):
    tol = dict(atol=1e-11, rtol=1e-9) if dtype == torch.float64 else dict(atol=2e-6, rtol=1e-5)
    a_leaves = (a,) if isinstance(a, Tensor) else a
    b_leaves = (b,) if isinstance(b, Tensor) else b
    assert len(a_leaves) == len(b_leaves)
    for x, y in zip(a_leaves, b_leaves):
        torch.testing.assert_close(x, y, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cell", [GRUStyle, LSTMStyle, Gated])
@pytest.mark.parametrize("batch", [3, 33])  # one block of rows; two with two threads
def test_program_gives_the_step_loops_numbers(cell, dtype, batch, built, monkeypatch, two_threads):
    fast, plain = layers(cell, dtype=dtype, num_layers=2, bidirectional=True)
    x = torch.randn(7, batch, 5, dtype=dtype)
    spy = use(monkeypatch, "kernel", built)
    with torch.no_grad():
        out, state = fast(x)
        want_out, want_state = plain(x)
    assert spy.calls == ["step_program"] * 4  # two layers, two directions
    assert_same(out, want_out, dtype)
    assert_same(state, want_state, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "kind, options",
    [
        ("RNN", {}),
        ("RNN", {"nonlinearity": "relu"}),
        ("LSTM", {}),
        ("LSTM", {"proj_size": 3}),
        ("LSTM", {"bias": False}),
        ("GRU", {}),
        ("GRU", {"bias": False}),
    ],
)
def test_reference_path_runs_its_step_as_a_program(kind, options, dtype, built, monkeypatch):
    torch.manual_seed(1)
    reference = getattr(rnnkit, kind)(
        5, 6, num_layers=2, bidirectional=True, backend="reference", dtype=dtype, **options
    )
    native = getattr(nn, kind)(5, 6, num_layers=2, bidirectional=True, dtype=dtype, **options)
    native.load_state_dict(reference.state_dict())
    x = torch.randn(8, 4, 5, dtype=dtype)
    spy = use(monkeypatch, "kernel", built)
    with torch.no_grad():
        out, state = reference(x)
        want_out, want_state = native(x)
    assert spy.calls == ["step_program"] * 4
    assert_same(out, want_out, dtype)
    assert_same(state, want_state, dtype)
    use(monkeypatch, "loop")  # the Python loop, the same numbers
    with torch.no_grad():
        loop_out, loop_state = reference(x)
    assert_same(out, loop_out, dtype)
    assert_same(state, loop_state, dtype)


@pytest.mark.parametrize("kind", ["hoisted", "reference"])
def test_program_runs_a_few_steps_at_a_time(kind, built, monkeypatch):
    # the input side is made and consumed by chunks of steps (dense.chunks): 2 steps here, and
    # an odd T, so the state (tuple and the output read back as a state) crosses chunk ends
    monkeypatch.setattr(step_program.dense, "chunk_steps", lambda row: 2)
    torch.manual_seed(3)
    x = torch.randn(7, 3, 5, dtype=torch.float64)
    if kind == "hoisted":
        fast, plain = layers(LSTMStyle)
    else:
        fast = rnnkit.LSTM(5, 6, backend="reference", dtype=torch.float64)
        plain = nn.LSTM(5, 6, dtype=torch.float64)
        plain.load_state_dict(fast.state_dict())
    spy = use(monkeypatch, "kernel", built)
    with torch.no_grad():
        out, state = fast(x)
        want_out, want_state = plain(x)
    assert spy.calls == ["step_program"] * 4  # steps 0-1, 2-3, 4-5, 6
    assert_same(out, want_out, torch.float64)
    assert_same(state, want_state, torch.float64)


@pytest.mark.parametrize("batch", [3, 19])  # one block of rows; two with two threads
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_reference_path_makes_its_input_side_in_the_loop(
    kind, bias, batch, built, monkeypatch, two_threads
):
    # float32 with the panel kernel (AVX-512): one call per layer and direction for the whole
    # sequence, whatever the chunk size, each block of rows making its x_t W_ih^T + b_ih;
    # batch-first input (strided rows)
    from rnnkit.cells.kernels import dense

    if dense.panels(torch.zeros(16, 5)) is None:
        pytest.skip("the panel kernel needs AVX-512")
    monkeypatch.setattr(step_program.dense, "chunk_steps", lambda row: 2)
    torch.manual_seed(5)
    options = dict(num_layers=2, bidirectional=True, batch_first=True, bias=bias)
    fast = getattr(rnnkit, kind)(5, 6, backend="reference", **options)
    plain = getattr(nn, kind)(5, 6, **options)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(batch, 7, 5)

    panels_given = []

    class Recording:  # the kernels, noting how many input panels each step_program call got
        def __getattr__(self, name):
            return getattr(built, name)

        def step_program(self, *args):
            panels_given.append(len(args[-2]))
            return built.step_program(*args)

    spy = use(monkeypatch, "kernel", Recording())
    with torch.no_grad():
        out, state = fast(x)
        want_out, want_state = plain(x)
    assert spy.calls == ["step_program"] * 4 and panels_given == [1] * 4
    assert_same(out, want_out, torch.float32)
    assert_same(state, want_state, torch.float32)


def test_input_panels_must_match_every_input_side_buffer(built):
    # the program's input-side buffers are checked against the panels' own N and K: two buffers
    # of one input at different widths (17 and 32 round to the same panel size) are refused
    from rnnkit.cells.kernels import dense

    w = torch.randn(17, 4)
    panels = dense.panels(w)
    if panels is None:
        pytest.skip("the panel kernel needs AVX-512")
    assert panels.shape == (17, 4, 1)
    x, h = torch.randn(3, 2, 4), torch.zeros(2, 17)
    # x's step (17 wide), h, the output, the next h; tanh(x) -> y, h
    buffers = torch.tensor([[0, 0, 17], [1, 0, 17], [3, 0, 17], [2, 0, 17]])
    ops = torch.tensor([[3, 2, 0, 17, 0, 0, 1, 0, 0, 0], [0, 3, 0, 17, 2, 0, 1, 0, 0, 0]])
    ys = built.step_program(ops, buffers, [x], [h], [], [], [], [], torch.zeros(0), 17, None,
                            [panels], [torch.empty(0)])[0]  # fmt: skip
    torch.testing.assert_close(ys, torch.tanh(x @ w.t()), rtol=1e-5, atol=1e-6)
    wide = torch.cat([buffers, torch.tensor([[0, 0, 32]])])  # the same input read 32 wide
    with pytest.raises(RuntimeError, match="does not match its width"):
        built.step_program(ops, wide, [x], [h], [], [], [], [], torch.zeros(0), 17, None,
                           [panels], [torch.empty(0)])  # fmt: skip
    with pytest.raises(RuntimeError, match="does not match its width"):  # W of 16 rows
        built.step_program(ops, buffers, [x], [h], [], [], [], [], torch.zeros(0), 17, None,
                           [dense.panels(w[:16])], [torch.empty(0)])  # fmt: skip


def test_a_gradient_keeps_the_step_loop(built, monkeypatch):
    fast, plain = layers(GRUStyle)
    spy = use(monkeypatch, "kernel", built)
    x = torch.randn(5, 3, 5, dtype=torch.float64, requires_grad=True)
    out, _ = fast(x)  # parameters need gradients: no program
    assert spy.calls == [] and out.requires_grad
    (grad,) = torch.autograd.grad(out.sum(), x)
    (want,) = torch.autograd.grad(plain(x)[0].sum(), x)
    torch.testing.assert_close(grad, want)
    with torch.no_grad():
        fast(x)
    assert spy.calls == ["step_program"]


@pytest.mark.parametrize("cell", [Dropping, Summing, InPlace])
def test_unsupported_steps_keep_the_step_loop(cell, built, monkeypatch):
    fast, plain = layers(cell)
    fast.train(), plain.train()
    spy = use(monkeypatch, "kernel", built)
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.manual_seed(5)
        out, state = fast(x)
        torch.manual_seed(5)
        want_out, want_state = plain(x)
    assert spy.calls == []
    (hoisted,) = fast.__dict__["_hoisted"].values()
    assert list(hoisted.sequence.programs.values()) == [None]  # lowered once, remembered
    assert_same(out, want_out, torch.float64)
    assert_same(state, want_state, torch.float64)


def test_lowering_names_what_it_cannot_do():
    fast, _ = layers(Summing)
    with torch.no_grad():
        fast(torch.randn(3, 2, 5, dtype=torch.float64))
    (hoisted,) = fast.__dict__["_hoisted"].values()
    xp = hoisted.project_input(torch.randn(2, 2, 5, dtype=torch.float64))
    first = tuple(p[0] for p in xp) if isinstance(xp, tuple) else xp[0]
    with pytest.raises(Unsupported, match="sum"):
        lower(
            hoisted.step_graph,
            first,
            torch.zeros(2, 6, dtype=torch.float64),
            {"cell": fast.cells[0]},
        )


def test_hooks_and_lengths_keep_the_step_loop(built, monkeypatch):
    fast, plain = layers(GRUStyle)
    spy = use(monkeypatch, "kernel", built)
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    calls = []
    handle = fast.cells[0].hh.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        fast(x)
    handle.remove()
    assert spy.calls == [] and len(calls) == 6  # the hook saw every step
    lengths = torch.tensor([6, 2, 4])
    with torch.no_grad():
        out, state = fast(x, lengths=lengths)
        want_out, want_state = plain(x, lengths=lengths)
    assert spy.calls == []  # a mask runs per step
    assert_same(out, want_out, torch.float64)


def test_program_reads_the_weights_at_every_call(built, monkeypatch):
    fast, plain = layers(LSTMStyle)
    spy = use(monkeypatch, "kernel", built)
    x = torch.randn(5, 2, 5, dtype=torch.float64)
    with torch.no_grad():
        fast(x)
        for layer in (fast, plain):  # an optimizer step, in place
            for p in layer.parameters():
                p.mul_(1.1).add_(0.05)
        out, state = fast(x)
        want_out, want_state = plain(x)
    assert spy.calls == ["step_program"] * 2
    assert_same(out, want_out, torch.float64)
    assert_same(state, want_state, torch.float64)


def test_switched_off_kernels_run_the_loop(monkeypatch):
    monkeypatch.setenv("RNNKIT_KERNELS", "0")
    fast, plain = layers(GRUStyle)
    x = torch.randn(4, 2, 5, dtype=torch.float64)
    with torch.no_grad():
        out, _ = fast(x)
        want, _ = plain(x)
    (hoisted,) = fast.__dict__["_hoisted"].values()
    assert hoisted.sequence.programs == {}  # declined before lowering
    assert_same(out, want, torch.float64)


def test_kernel_rejects_a_malformed_program(built):
    x = torch.randn(3, 2, 4)
    h = torch.zeros(2, 4)
    # x's step, h, a work buffer, a product, the output, the next h
    buffers = torch.tensor([[0, 0, 4], [1, 0, 4], [4, 0, 4], [5, 0, 4], [3, 0, 4], [2, 0, 4]])

    def refused(rows, match, bufs=buffers, steps=x):
        with pytest.raises(RuntimeError, match=match):
            built.step_program(torch.tensor(rows), bufs, [steps], [h], [], [], [], [],
                               torch.zeros(0), 4, None, [], [])  # fmt: skip

    outputs = [[0, 4, 0, 4, 2, 0, 1, 0, 0, 0], [0, 5, 0, 4, 2, 0, 1, 0, 0, 0]]
    fine = [[3, 2, 0, 4, 0, 0, 1, 0, 0, 0], *outputs]  # tanh(x) -> y and h
    built.step_program(torch.tensor(fine), buffers, [x], [h], [], [], [], [], torch.zeros(0), 4,
                       None, [], [])  # fmt: skip
    refused([[0, 9, 0, 4, 0, 0, 1, 0, 0, 0], *outputs], "out of range")
    refused([[0, 2, 0, 8, 0, 0, 1, 0, 0, 0], *outputs], "outside its buffer")  # 8 of 4 columns
    refused([[0, 1, 0, 4, 0, 0, 1, 0, 0, 0], *outputs], "writes to an input")  # over h0
    refused([[0, 2, 0, 4, 3, 0, 1, 0, 0, 0], *outputs], "before it is made")  # no LINEAR made it
    refused([[0, 2, 0, 4, 4, 0, 1, 0, 0, 0], *outputs], "before it is made")  # y read unwritten
    refused(fine[:2], "no operation writes")  # the next h left unwritten
    refused([*fine, [0, 4, 0, 4, 2, 0, 1, 0, 0, 0]], "written whole, once")
    refused([[0, 4, 0, 2, 0, 0, 1, 0, 0, 0], *fine], "written whole, once")  # half of y
    twice = torch.cat([buffers, torch.tensor([[2, 0, 4]])])  # the same h written twice
    refused(fine, "written once", bufs=twice)
    refused(fine, "at least one step", steps=x[:0])
    out = torch.full((3, 2, 4), 7.0)  # a caller's output: written there
    ys = built.step_program(torch.tensor(fine), buffers, [x], [h], [], [], [], [],
                            torch.zeros(0), 4, out, [], [])[0]  # fmt: skip
    assert ys.data_ptr() == out.data_ptr()
    torch.testing.assert_close(out, torch.tanh(x))
    with pytest.raises(RuntimeError, match="out must be"):
        built.step_program(torch.tensor(fine), buffers, [x], [h], [], [], [], [],
                           torch.zeros(0), 4, torch.empty(3, 2, 5), [], [])  # fmt: skip


def test_program_cache_keys_on_widths_and_dtype(built, monkeypatch):
    fast, _ = layers(GRUStyle, dtype=torch.float32)
    with torch.no_grad():
        fast(torch.randn(3, 2, 5))
        fast(torch.randn(4, 7, 5))  # another batch and length: the same program
        fast.double()
        fast(torch.randn(3, 2, 5, dtype=torch.float64))
    (hoisted,) = fast.__dict__["_hoisted"].values()
    assert len(hoisted.sequence.programs) == 2
    assert all(p is not None for p in hoisted.sequence.programs.values())
    assert step_program.Program is type(next(iter(hoisted.sequence.programs.values())))
