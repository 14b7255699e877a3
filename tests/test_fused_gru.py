"""``rnnkit.GRU(backend="fused")``, rnnkit's C++ GRU time loop, against ``torch.nn.GRU``.

The engine is the layer-normalised GRU's (``rnnkit.cells.layer_norm_fused.gru_sequence`` and
``rnnkit/cells/kernels/layer_norm_rnn.cpp``) without the norm. Every test builds a torch.nn.GRU
and our twin with the same weights, runs both, and compares the outputs, ``h_n`` and every
gradient (input, ``h0``, each weight and bias). The kernel tests skip where the kernels cannot
be built; the fallback tests still run.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import TOL, assert_all_close, leaves, run_and_grad, twins, use
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit.cells import layer_norm_fused
from rnnkit.cells.kernels import dense
from rnnkit.layers.weight_drop import WeightDropGRU

DTYPES = [torch.float32, torch.float64]


def loss_weights(outputs, seed=7):
    """A different weight for every output element: a plain sum would hide sign mistakes."""
    torch.manual_seed(seed)
    return [torch.randn_like(o) for o in outputs]


def compare(ref, ours, x, h0, dtype):
    """Run both layers on the same input and initial state; compare everything."""
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    h_ref = h_ours = None
    if h0 is not None:
        h_ref, h_ours = h0.clone().requires_grad_(), h0.clone().requires_grad_()
    with torch.no_grad():
        weights = loss_weights(leaves(ref(x) if h0 is None else ref(x, h0)))
    out_ref, grads_ref = run_and_grad(ref, x_ref, h_ref, weights)
    out_ours, grads_ours = run_and_grad(ours, x_ours, h_ours, weights)
    assert_all_close(out_ours, out_ref, dtype)
    assert_all_close(grads_ours, grads_ref, dtype)


def same_seed_runs(fused, loop, x):
    """Output, h_n and parameter gradients of both layers, each run from the same seed (so
    that their dropout masks are the same); asserts they agree and returns them."""
    results = []
    for layer in (fused, loop):
        torch.manual_seed(11)
        out, h_n = layer(x)
        grads = torch.autograd.grad(out.sum() + h_n.square().sum(), list(layer.parameters()))
        results.append((out, h_n, *grads))
    assert_all_close(results[0], results[1], torch.float64)
    return results


def fused_twins(dtype, *args, **kwargs):
    torch.manual_seed(0)
    ref, ours = twins("GRU", *args, backend="fused", **kwargs)
    return ref.to(dtype), ours.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("T,B", [(1, 1), (1, 3), (5, 1), (6, 4)])
def test_fused_matches_torch(T, B, batch_first, bidirectional, num_layers, dtype, built,
                             monkeypatch):  # fmt: skip
    ref, ours = fused_twins(dtype, 5, 7, num_layers=num_layers, bidirectional=bidirectional,
                            batch_first=batch_first)  # fmt: skip
    spy = use(monkeypatch, "kernel", built)
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5), dtype=dtype)
    h0 = torch.randn(num_layers * (2 if bidirectional else 1), B, 7, dtype=dtype)
    compare(ref, ours, x, h0, dtype)
    cells = num_layers * (2 if bidirectional else 1)
    if T > 1:  # one step takes the reference step (the same equations)
        assert spy.calls.count("gru_forward") == cells
        assert spy.calls.count("gru_backward") == cells


@pytest.mark.parametrize("B", [16, 19])
def test_fused_row_blocks_on_two_threads(B, built, two_threads, monkeypatch):
    # from 16 rows on, each of two threads runs the whole loop for its own block of rows
    spy = use(monkeypatch, "kernel", built)
    ref, ours = fused_twins(torch.float64, 5, 7, num_layers=2, bidirectional=True)
    x = torch.randn(6, B, 5, dtype=torch.float64)
    compare(ref, ours, x, torch.randn(4, B, 7, dtype=torch.float64), torch.float64)
    assert spy.calls.count("gru_backward") == 4
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_without_h0_bias_or_batch(dtype, built, monkeypatch):
    spy = use(monkeypatch, "kernel", built)
    ref, ours = fused_twins(dtype, 4, 6, num_layers=2, bias=False)
    compare(ref, ours, torch.randn(5, 3, 4, dtype=dtype), None, dtype)
    ref, ours = fused_twins(dtype, 4, 6, bidirectional=True)
    compare(ref, ours, torch.randn(5, 4, dtype=dtype), torch.randn(2, 6, dtype=dtype), dtype)
    assert spy.calls.count("gru_backward") == 2 + 2


def test_fused_larger_float32(built, monkeypatch):
    # long enough for float32 rounding (polynomial exp and tanh) to build up through the loop
    spy = use(monkeypatch, "kernel", built)
    ref, ours = fused_twins(torch.float32, 32, 48, num_layers=2)
    compare(ref, ours, torch.randn(40, 8, 32), torch.randn(2, 8, 48), torch.float32)
    assert spy.calls.count("gru_backward") == 2


def test_kernel_equals_fallback_loop_and_torch(built, monkeypatch):
    """The engine itself, kernel and pure-PyTorch loop, forward and backward, against torch."""
    torch.manual_seed(1)
    ref = torch.nn.GRU(5, 6).double()
    x = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    w_ih, w_hh, b_ih, b_hh = ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0

    def run(engine):
        spy = use(monkeypatch, engine, built)
        hs = layer_norm_fused.gru_sequence(lambda x: F.linear(x, w_ih, b_ih), x, h0, w_hh, None,
                                           b_hh, 0.0, (w_ih, b_ih))  # fmt: skip
        torch.manual_seed(3)
        grads = torch.autograd.grad((hs * torch.randn_like(hs)).sum(), [x, h0, *ref.parameters()])
        return spy, hs, grads

    spy, hs, grads = run("kernel")
    assert spy.calls == ["gru_forward", "gru_backward"]
    _, hs_fb, grads_fb = run("fallback")
    hs_ref, _ = ref(x, h0.unsqueeze(0))
    torch.manual_seed(3)
    w = torch.randn_like(hs_ref)
    grads_ref = torch.autograd.grad((hs_ref * w).sum(), [x, h0, *ref.parameters()])
    for other, other_grads in ((hs_fb, grads_fb), (hs_ref, grads_ref)):
        torch.testing.assert_close(hs, other, **TOL[torch.float64])
        for g, g_other in zip(grads, other_grads):
            torch.testing.assert_close(g, g_other, **TOL[torch.float64])


@pytest.mark.parametrize("engine", ["kernel", "fallback"])
def test_forward_only_by_chunks(engine, built, monkeypatch):
    # chunks of 2 steps hand the state across chunk boundaries (odd T: a last chunk of one step)
    monkeypatch.setattr(dense, "chunk_steps", lambda row: 2)
    torch.manual_seed(2)
    ref = torch.nn.GRU(4, 5)
    w_ih, w_hh, b_ih, b_hh = ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0
    x, h0 = torch.randn(7, 3, 4), torch.randn(3, 5)
    spy = use(monkeypatch, engine, built)
    with torch.no_grad():
        hs = layer_norm_fused.gru_sequence(lambda x: F.linear(x, w_ih, b_ih), x, h0, w_hh, None,
                                           b_hh, 0.0, (w_ih, b_ih))  # fmt: skip
        hs_ref, _ = ref(x, h0.unsqueeze(0))
    assert hs.grad_fn is None
    if spy is not None:
        assert spy.calls == ["gru_forward"] * 4
    torch.testing.assert_close(hs, hs_ref, **TOL[torch.float32])


def test_kernel_gradcheck(built, monkeypatch):
    spy = use(monkeypatch, "kernel", built)
    torch.manual_seed(5)
    layer = rnnkit.GRU(3, 4, num_layers=2, bidirectional=True, backend="fused").double()
    keys = [k for k, _ in layer.named_parameters()]
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 2, 4, dtype=torch.float64, requires_grad=True)

    def f(x, h0, *weights):
        with torch.nn.utils.stateless._reparametrize_module(layer, dict(zip(keys, weights))):
            return layer(x, h0)

    assert torch.autograd.gradcheck(f, (x, h0, *layer.parameters()))
    assert "gru_backward" in spy.calls


def test_dropout_between_layers_matches_reference_path(built, monkeypatch):
    # the fused and reference paths share the unroller's inter-layer dropout: same seed, same mask
    spy = use(monkeypatch, "kernel", built)
    torch.manual_seed(0)
    fused = rnnkit.GRU(4, 6, num_layers=3, dropout=0.5, backend="fused").double()
    loop = rnnkit.GRU(4, 6, num_layers=3, dropout=0.5, backend="reference").double()
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    results = same_seed_runs(fused, loop, x)
    assert spy.calls.count("gru_forward") == 3
    with torch.no_grad():  # and dropout does act: eval mode gives another output
        assert not torch.allclose(fused.eval()(x)[0], results[0][0])


def test_fallbacks_give_torch_numbers(built, monkeypatch):
    """Where the engine cannot run, torch's kernels (or the reference loop) do, and say so."""
    torch.manual_seed(0)
    ref, ours = twins("GRU", 4, 5, batch_first=True, backend="fused")
    x = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 2, 4])
    spy = use(monkeypatch, "kernel", built)
    # lengths= and PackedSequence: torch's packed kernels
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    torch.testing.assert_close(ours(packed)[0].data, ref(packed)[0].data, rtol=0, atol=0)
    auto = rnnkit.GRU(4, 5, batch_first=True)
    auto.load_state_dict(ref.state_dict())
    torch.testing.assert_close(ours(x, lengths=lengths), auto(x, lengths=lengths), rtol=0, atol=0)
    # tracing: torch's kernel, which a trace can hold (check_trace would rerun ours eagerly)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer warnings
        traced = torch.jit.trace(ours, x, check_trace=False)
    torch.testing.assert_close(traced(x), ref(x), rtol=0, atol=0)
    # other dtypes: torch's kernel
    assert copy.deepcopy(ours).bfloat16()(x.bfloat16())[0].dtype == torch.bfloat16
    assert spy.calls == []
    # return_states: the reference loop, as with backend="auto"
    out, h_n, states = ours(x, return_states=True)
    torch.testing.assert_close(out, ref(x)[0], **TOL[torch.float32])
    assert states.h.shape == (1, 6, 3, 5) and spy.calls == []
    # kernels off (RNNKIT_KERNELS=0, or no compiler): torch's kernel, torch's numbers exactly
    use(monkeypatch, "fallback")
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


def test_kernels_off_by_environment(monkeypatch):
    monkeypatch.setenv("RNNKIT_KERNELS", "0")
    torch.manual_seed(0)
    ref, ours = twins("GRU", 3, 4, num_layers=2, backend="fused")
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: rnnkit.LSTM(3, 4, backend="fused"),
        lambda: rnnkit.RNN(3, 4, backend="fused"),
        lambda: rnnkit.GRUCell(3, 4, backend="fused"),
    ],
    ids=["LSTM", "RNN", "GRUCell"],
)
def test_fused_is_for_the_gru_layer_only(build):
    with pytest.raises(ValueError, match=r"^backend='fused' is for rnnkit.GRU only, not \w+: "):
        build()


def test_unknown_backend_lists_fused_for_gru():
    with pytest.raises(ValueError, match="'fused'"):
        rnnkit.GRU(3, 4, backend="fast")


def test_weight_drop_runs_on_the_fused_engine(built, monkeypatch):
    # WeightDropGRU lends its dropped W_hh to the cells: the fused engine must run on those
    spy = use(monkeypatch, "kernel", built)
    torch.manual_seed(0)
    fused = WeightDropGRU(4, 6, num_layers=2, weight_drop=0.5, backend="fused").double()
    loop = WeightDropGRU(4, 6, num_layers=2, weight_drop=0.5, backend="reference").double()
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    same_seed_runs(fused, loop, x)
    assert spy.calls.count("gru_forward") == 2
