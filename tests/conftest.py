"""Shared helpers: build a torch.nn layer and its rnnkit twin, run both, compare everything."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

import rnnkit
from rnnkit.cells import kernels as native

TORCH = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}
OURS = {"RNN": rnnkit.RNN, "LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU}
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def twins(kind: str, *args, backend: str = "reference", **kwargs):
    """A torch.nn layer and an rnnkit layer with the same weights."""
    ref = TORCH[kind](*args, **kwargs)
    ours = OURS[kind](*args, backend=backend, **kwargs)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def leaves(x):
    """Flatten outputs (tensors, tuples, PackedSequence) to a list of tensors."""
    if isinstance(x, PackedSequence):
        return [x.data]
    if isinstance(x, torch.Tensor):
        return [x]
    return [t for part in x for t in leaves(part)]


def run_and_grad(module, inputs, hx, weights):
    """Forward, a loss that weighs every output element differently, and all gradients.

    Returns the outputs and the gradients with respect to the inputs, the initial state and
    every parameter (None where a tensor gets no gradient).
    """
    out = module(inputs, hx) if hx is not None else module(inputs)
    flat = leaves(out)
    loss = sum((o * w).sum() for o, w in zip(flat, weights))
    wrt = leaves(inputs) + (leaves(hx) if hx is not None else []) + list(module.parameters())
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    return flat, grads


def assert_all_close(a, b, dtype):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
            continue
        torch.testing.assert_close(x, y, **TOL[dtype])


def step_loop(cell, x, state):
    """The readable reference: one ``forward`` call per step."""
    ys = []
    for x_t in x.unbind(0):
        y, state = cell(x_t, state)
        ys.append(y)
    return torch.stack(ys), state


@pytest.fixture(scope="module")
def built():
    """rnnkit's C++ kernels, built on first use; the test skips where they cannot be built."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ops = native._build() if native.enabled() else None
    if ops is None:
        pytest.skip("rnnkit's C++ kernels are disabled (RNNKIT_KERNELS=0) or could not be built")
    return ops


class Spy:
    """Counts the calls made to the kernels' time loops, so a test knows which engine ran
    (the allocations ``sequence_buffer`` and ``empty_huge`` and the weight layout
    ``pack_panels`` are not counted)."""

    def __init__(self, ops):
        self.ops, self.calls = ops, []

    def __getattr__(self, name):
        op = getattr(self.ops, name)
        if name in ("sequence_buffer", "empty_huge", "pack_panels"):
            return op
        return lambda *args: self.calls.append(name) or op(*args)


def use(monkeypatch, engine, ops=None):
    """Route the engines to the kernels (``"kernel"``, returns the spy) or the PyTorch loops."""
    if engine == "kernel":
        spy = Spy(ops)
        monkeypatch.setattr(native, "load", lambda: spy)
        return spy
    monkeypatch.setattr(native, "load", lambda: None)
    return None


@pytest.fixture
def two_threads():
    """torch on 2 threads for the test: the kernels split 16+ batch rows into two blocks then."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class GRUStyle(nn.Module):
    """A GRU step as the docs show it (one Linear on x_t, one on h, chunk, gate maths): the
    plain user cell of tests/test_hoist.py and tests/test_step_program.py."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, 3 * hidden_size)
        self.hh = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        xr, xz, xn = self.ih(x).chunk(3, -1)
        hr, hz, hn = self.hh(h).chunk(3, -1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return h, h
