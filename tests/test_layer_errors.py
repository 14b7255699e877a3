"""Bad arguments and bad input raise what torch.nn raises, with a message that names the problem."""

from __future__ import annotations

import pytest
import torch
from conftest import OURS, TORCH, twins


def raised(fn):
    try:
        fn()
    except Exception as e:
        return e
    return None


CTOR_CASES = {
    "hidden_size<=0": ((3, 0), {}),
    "hidden_size negative": ((3, -2), {}),
    "input_size<=0": ((0, 4), {}),
    "hidden_size float": ((3, 4.0), {}),
    "num_layers<=0": ((3, 4), {"num_layers": 0}),
    "bias not bool": ((3, 4), {"bias": 1}),
    "batch_first not bool": ((3, 4), {"batch_first": "yes"}),
    "dropout > 1": ((3, 4), {"dropout": 1.5}),
    "dropout bool": ((3, 4), {"dropout": True}),
    "proj_size negative": ((3, 4), {"proj_size": -1}),
    "proj_size >= hidden_size": ((3, 4), {"proj_size": 4}),
}


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("case", list(CTOR_CASES))
def test_constructor_errors_match_torch(kind, case):
    args, kwargs = CTOR_CASES[case]
    expected = raised(lambda: TORCH[kind](*args, **kwargs))
    got = raised(lambda: OURS[kind](*args, **kwargs))
    assert expected is not None
    assert type(got) is type(expected), f"{case}: torch raised {expected!r}, rnnkit {got!r}"
    assert str(got)


def test_nonlinearity_and_backend_errors():
    with pytest.raises(ValueError, match="nonlinearity"):
        OURS["RNN"](3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="backend must be one of"):
        OURS["LSTM"](3, 4, backend="cuda")


def forward_cases(kind):
    """(name, input, hx) that torch.nn rejects; shapes for a (3 -> 4) layer, batch 2, T 5."""
    lstm = kind == "LSTM"

    def state(*shape, c_shape=None):
        h = torch.zeros(*shape)
        return (h, torch.zeros(*(c_shape or shape))) if lstm else h

    x = torch.randn(5, 2, 3)
    cases = [
        ("1-D input", torch.randn(3), None),
        ("4-D input", torch.randn(5, 2, 3, 1), None),
        ("wrong input size", torch.randn(5, 2, 7), None),
        ("input/weight dtype mismatch", x.double(), None),
        ("wrong hidden size", x, state(1, 2, 9)),
        ("batch mismatch", x, state(1, 3, 4)),
        ("too many layers in h0", x, state(2, 2, 4)),
        ("2-D hx with batched input", x, state(2, 4)),
        ("3-D hx with unbatched input", torch.randn(5, 3), state(1, 1, 4)),
    ]
    if lstm:
        cases.append(("wrong cell-state size", x, state(1, 2, 4, c_shape=(1, 2, 5))))
    return cases


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_forward_errors_match_torch(kind, backend):
    ref, ours = twins(kind, 3, 4, backend=backend)
    for name, x, hx in forward_cases(kind):
        expected = raised(lambda: ref(x, hx))  # noqa: B023
        got = raised(lambda: ours(x, hx))  # noqa: B023
        assert expected is not None, name
        assert type(got) is type(expected), f"{name}: torch raised {expected!r}, rnnkit {got!r}"


def test_error_messages_name_the_problem():
    lstm = OURS["LSTM"](3, 4, backend="reference")
    with pytest.raises(RuntimeError, match="Expected 3, got 7"):
        lstm(torch.randn(5, 2, 7))
    with pytest.raises(ValueError, match=r"dtype \(torch.float64\) does not match"):
        lstm(torch.randn(5, 2, 3, dtype=torch.float64))
    with pytest.raises(
        RuntimeError, match=r"Expected hidden\[0\] size \(1, 2, 4\), got \[1, 3, 4\]"
    ):
        lstm(torch.randn(5, 2, 3), (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        lstm(torch.randn(5, 2, 3, 1))


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_lengths_errors(backend):
    gru = OURS["GRU"](3, 4, backend=backend)
    x = torch.randn(5, 2, 3)
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        gru(x, lengths=torch.tensor([5, 4, 3]))
    with pytest.raises(ValueError, match=r"lie in \[1, 5\]"):
        gru(x, lengths=torch.tensor([6, 1]))
    with pytest.raises(ValueError, match=r"lie in \[1, 5\]"):
        gru(x, lengths=torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integers"):
        gru(x, lengths=torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match="batched 3-D"):
        gru(torch.randn(5, 3), lengths=torch.tensor([5]))


def test_native_cannot_return_states():
    rnn = OURS["RNN"](3, 4, backend="native")
    with pytest.raises(ValueError, match="reference path"):
        rnn(torch.randn(5, 2, 3), return_states=True)
