"""Hoisting a plain cell's input side out of the loop gives the plain loop's numbers."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from conftest import GRUStyle
from torch import Tensor, nn

import rnnkit
from rnnkit.layers.hoist import HoistedCell, hoist


class LSTMStyle(nn.Module):
    """A tuple state, F.linear on a raw parameter, a positive chunk dim, an output != state."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.w_ih = nn.Parameter(torch.randn(4 * hidden_size, input_size) * 0.3)
        self.b = nn.Parameter(torch.randn(4 * hidden_size) * 0.1)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size, bias=False)
        self.hidden_size = hidden_size

    def initial_state(self, batch_size: int, *, dtype=None, device=None):
        zero = torch.zeros(batch_size, self.hidden_size, dtype=dtype, device=device)
        return zero, zero

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]):
        h, c = state
        gates = F.linear(x, self.w_ih, self.b * 0.5) + self.hh(h)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h * 2, (h, c)


class MatmulStyle(nn.Module):
    """``x @ W`` with a raw parameter, a chunk along dim 1, a LayerNorm and an activation on x."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(input_size, 2 * hidden_size) * 0.4)
        self.norm = nn.LayerNorm(2 * hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        a, b = F.gelu(self.norm(x @ self.w)).chunk(2, 1)
        h = torch.tanh(a + self.hh(h)) * torch.sigmoid(b)
        return h, h


class Branchy(GRUStyle):
    """Python control flow on a tensor's value: fx cannot trace it."""

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        if x.sum() > 0:
            x = -x
        return super().forward(x, h)


class DropIn(GRUStyle):
    """Dropout on x_t before the Linear: the dropout, and so the Linear after it, stay per step."""

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return super().forward(F.dropout(x, 0.5, self.training), h)


class DropAfter(GRUStyle):
    """Dropout after a hoistable Linear: the Linear moves out, the dropout stays per step.

    ``self.training`` is read by the tracer as a constant: eval() must not keep dropping.
    """

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        xr, xz, xn = F.dropout(self.ih(x), 0.3, self.training).chunk(3, -1)
        hr, hz, hn = self.hh(h).chunk(3, -1)
        z = torch.sigmoid(xz + hz)
        h = (1 - z) * torch.tanh(xn + torch.sigmoid(xr + hr) * hn) + z * h
        return h, h


def pair(cell, seed=0, **kwargs):
    """The same layer twice: hoisted and plain (hoist=False), the same weights."""
    torch.manual_seed(seed)
    hoisted = rnnkit.Recurrent(cell, 3, 4, dtype=torch.float64, **kwargs)
    plain = copy.deepcopy(hoisted)
    plain.hoist = False
    return hoisted, plain


def run(rnn, x, seed=1, **kwargs):
    torch.manual_seed(seed)
    out = rnn(x, **kwargs)
    state = out[1]
    leaves = (state,) if isinstance(state, Tensor) else state
    loss = out[0].square().sum() + sum(s.sin().sum() for s in leaves)
    grads = torch.autograd.grad(loss, [x, *rnn.parameters()])
    return out, grads


def assert_same(a, b):
    if isinstance(a, Tensor):
        torch.testing.assert_close(a, b)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert_same(u, v)


def used_hoisting(rnn) -> bool:
    return any(isinstance(c, HoistedCell) for c in rnn._step_cells())


def test_gru_style_cell_is_split_at_the_input_linear():
    side = hoist(GRUStyle(3, 4)).input_side
    assert "cell_ih" in side and "chunk" in side
    assert not any(name.startswith("cell_hh") for name in side)
    rnn, _ = pair(GRUStyle)
    assert used_hoisting(rnn)


def test_matmul_layer_norm_and_chunk_on_dim_1_are_hoisted():
    side = hoist(MatmulStyle(3, 4)).input_side
    # sigmoid(b) depends on x only too
    assert side == ["matmul", "cell_norm", "gelu", "chunk", "getitem", "getitem_1", "sigmoid"]


def test_lstm_style_cell_hoists_linear_on_a_parameter_and_chunk_dim_1():
    side = hoist(LSTMStyle(3, 4)).input_side
    assert "linear" in side and "chunk" not in side  # chunk mixes in hh(h): per step


@pytest.mark.parametrize("cell", [GRUStyle, LSTMStyle, MatmulStyle])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_layers": 2, "bidirectional": True},
        {"batch_first": True, "num_layers": 2},
        {"bidirectional": True, "batch_first": True},
    ],
)
def test_hoisted_matches_plain_loop(cell, options):
    hoisted, plain = pair(cell, **options)
    assert used_hoisting(hoisted) and not used_hoisting(plain)
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    assert_same(run(hoisted, x), run(plain, x))


@pytest.mark.parametrize("cell", [GRUStyle, LSTMStyle])
def test_hoisted_matches_plain_with_lengths_states_and_unbatched(cell):
    hoisted, plain = pair(cell, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    assert_same(run(hoisted, x, lengths=lengths), run(plain, x, lengths=lengths))
    a, b = hoisted(x, return_states=True)[2], plain(x, return_states=True)[2]
    assert_same([s for k in a.steps for s in k], [s for k in b.steps for s in k])
    x1 = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert_same(run(hoisted, x1), run(plain, x1))
    one = torch.randn(3, 1, 3, dtype=torch.float64, requires_grad=True)  # a generated token
    assert_same(run(hoisted, one), run(plain, one))


@pytest.mark.parametrize("cell", [GRUStyle, LSTMStyle])
def test_gradcheck_through_the_hoisted_path(cell):
    torch.manual_seed(0)
    rnn = rnnkit.Recurrent(cell, 3, 2, num_layers=2, bidirectional=True, dtype=torch.float64)
    assert used_hoisting(rnn)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in rnn.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in rnn.parameters())

    def f(x, *weights):
        # functional_call swaps the parameters in: the hoisted graphs read them at run time
        return torch.func.functional_call(rnn, dict(zip(names, weights)), (x,))[0]

    assert torch.autograd.gradcheck(f, (x, *params))


def test_follows_optimizer_steps_load_state_dict_dtype_and_mode():
    hoisted, plain = pair(GRUStyle, num_layers=2)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    hoisted(x)  # build the hoisted steps first, then change everything under them
    for rnn in (hoisted, plain):
        opt = torch.optim.SGD(rnn.parameters(), lr=0.5)
        rnn(x)[0].sum().backward()
        opt.step()
    assert_same(hoisted(x), plain(x))
    torch.manual_seed(5)
    other = rnnkit.Recurrent(GRUStyle, 3, 4, num_layers=2, dtype=torch.float64)
    hoisted.load_state_dict(other.state_dict())
    plain.load_state_dict(other.state_dict())
    assert_same(hoisted(x), plain(x))
    hoisted.float(), plain.float()
    assert_same(hoisted(x.float()), plain(x.float()))
    hoisted.eval(), plain.eval()
    assert_same(hoisted(x.float()), plain(x.float()))


def test_state_dict_keys_and_parameters_unchanged():
    hoisted, plain = pair(LSTMStyle, num_layers=2, bidirectional=True)
    hoisted(torch.randn(4, 2, 3, dtype=torch.float64))
    assert list(hoisted.state_dict()) == list(plain.state_dict())
    assert len(list(hoisted.parameters())) == len(list(plain.parameters()))
    assert [n for n, _ in hoisted.named_modules()] == [n for n, _ in plain.named_modules()]
    buffer = io.BytesIO()
    torch.save(hoisted, buffer)  # the whole module pickles, without the derived steps
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert "_hoisted" not in loaded.__dict__
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    assert_same(loaded(x), plain(x))


def test_untraceable_cell_falls_back_to_the_plain_call():
    assert hoist(Branchy(3, 4)) is None
    hoisted, plain = pair(Branchy)
    assert not used_hoisting(hoisted)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    assert_same(run(hoisted, x), run(plain, x))


def test_dropout_on_x_stays_per_step():
    assert hoist(DropIn(3, 4)) is None  # nothing left to hoist: the Linear reads dropout's output
    hoisted, plain = pair(DropIn)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    assert_same(run(hoisted, x), run(plain, x))


def test_dropout_after_a_hoisted_linear_draws_the_plain_loops_numbers():
    side = hoist(DropAfter(3, 4)).input_side
    assert side == ["cell_ih"]  # the dropout and the chunk of its output run per step
    hoisted, plain = pair(DropAfter, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    assert used_hoisting(hoisted)
    assert_same(run(hoisted, x, seed=3), run(plain, x, seed=3))
    hoisted.eval(), plain.eval()
    assert_same(run(hoisted, x), run(plain, x))
    hoisted.train(), plain.train()
    assert_same(run(hoisted, x, seed=4), run(plain, x, seed=4))


def test_trace_records_the_plain_call():
    hoisted, plain = pair(GRUStyle, num_layers=2)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    traced = torch.jit.trace(hoisted, (x,), check_trace=False)
    torch.testing.assert_close(traced(x)[0], plain(x)[0])


class OwnPath(GRUStyle):
    hoisted_calls = 0

    def project_input(self, x):
        OwnPath.hoisted_calls += 1
        return self.ih(x)

    def step(self, xp, h):
        xr, xz, xn = xp.chunk(3, -1)
        hr, hz, hn = self.hh(h).chunk(3, -1)
        z = torch.sigmoid(xz + hz)
        h = (1 - z) * torch.tanh(xn + torch.sigmoid(xr + hr) * hn) + z * h
        return h, h


class OptOut(GRUStyle):
    hoist = False


def test_cells_with_their_own_path_or_opting_out_are_left_alone():
    rnn = rnnkit.Recurrent(OwnPath, 3, 4)
    assert not used_hoisting(rnn)
    rnn(torch.randn(5, 2, 3))
    assert OwnPath.hoisted_calls == 1
    assert not used_hoisting(rnnkit.Recurrent(OptOut, 3, 4))
    assert not used_hoisting(rnnkit.Recurrent(rnnkit.LayerNormLSTMCell, 3, 4))
    assert not used_hoisting(rnnkit.Recurrent(GRUStyle, 3, 4, hoist=False))


def test_only_elementwise_work_on_x_is_not_hoisted():
    class Leaky(nn.Module):
        def __init__(self, input_size, hidden_size):
            super().__init__()
            self.hh = nn.Linear(hidden_size, hidden_size)

        def forward(self, x, h):
            h = torch.tanh(torch.tanh(x) + self.hh(h))
            return h, h

    assert hoist(Leaky(4, 4)) is None


_HALF = torch.tensor(0.5, dtype=torch.float64)  # a global tensor: fx stores it as a constant


def test_tensor_attributes_are_read_live_and_global_tensors_keep_the_plain_call():
    class Scaled(GRUStyle):
        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.scale = torch.tensor(0.5, dtype=torch.float64)  # neither parameter nor buffer

        def forward(self, x, h):
            return super().forward(x * self.scale, h)

    class Global(GRUStyle):
        def forward(self, x, h):
            return super().forward(x * _HALF, h)

    cell = Global(3, 4)
    before = set(vars(cell))
    assert hoist(cell) is None
    assert set(vars(cell)) == before  # the tracer's constants never land on the user's cell
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    hoisted, plain = pair(Global)
    assert_same(run(hoisted, x), run(plain, x))
    hoisted, plain = pair(Scaled)
    assert used_hoisting(hoisted)
    for rnn in (hoisted, plain):
        rnn(x)
        rnn.cells[0].scale = torch.tensor(2.0, dtype=torch.float64)
    assert_same(run(hoisted, x), run(plain, x))
