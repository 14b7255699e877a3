"""The layers and cells under the tools torch users deploy with: script, trace, ONNX, compile.

Each test builds a layer, runs it through the tool, runs the result on inputs of a different batch
size (and time length, where the tool keeps the time axis dynamic) and compares with eager.
Which combinations keep a dynamic time axis is listed in docs/layers.md; the tests below assert
exactly that list (``_DYNAMIC_T``).
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch

import rnnkit
from rnnkit.cells.registry import cell_names
from rnnkit.layers.build import make_layer
from rnnkit.state import leaves

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

LAYERS = [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU]


@pytest.fixture(autouse=True)
def _quiet():
    # tracing and the exporters warn about every Python bool they bake in; the tests check
    # the numbers instead
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _inputs(batch: int, steps: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, 4, generator=g)
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    lengths[0] = steps
    return x, lengths


class _WithLengths(torch.nn.Module):
    """``layer(x, lengths=lengths)`` as a two-input module, for the tracers and exporters."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        return self.layer(x, lengths=lengths)


def _flat(result) -> list[torch.Tensor]:
    out, state = result[0], result[1]
    return [out, *leaves(state)]


def _assert_same(got, want, atol: float = 0.0) -> None:
    got = [torch.as_tensor(g) for g in got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w.detach(), atol=atol, rtol=0 if atol == 0 else 1e-4)


def _ort(onnx_bytes: bytes, *inputs: torch.Tensor) -> list:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
    return session.run(None, feeds)


def _legacy_onnx(model, args, names, dynamic_time: bool) -> bytes:
    axes = {0: "batch", 1: "time"} if dynamic_time else {0: "batch"}
    dynamic = {"x": axes, "lengths": {0: "batch"}}
    f = io.BytesIO()
    torch.onnx.export(
        model,
        args,
        f,
        dynamo=False,
        input_names=names,
        dynamic_axes={n: dynamic[n] for n in names},
    )
    return f.getvalue()


def _dynamo_onnx(model, args, dynamic_time: bool) -> bytes:
    B, T = torch.export.Dim("batch"), torch.export.Dim("time")
    shapes = [{0: B, 1: T} if dynamic_time else {0: B}, {0: B}][: len(args)]
    program = torch.onnx.export(model, args, dynamo=True, dynamic_shapes=tuple(shapes))
    return program.model_proto.SerializeToString()


# (exporter, cell, with lengths) -> the time axis stays dynamic; everything else fixes T
_DYNAMIC_T = {
    ("legacy", c, with_lengths)
    for c in ("lstm", "gru", "rnn", "rnn_relu")
    for with_lengths in (False, True)
} | {("dynamo", "lstm", False), ("dynamo", "gru", False)}


# -- torch.jit.script ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_script_layer_is_bitwise_the_eager_native_path(cls, batch_first):
    layer = cls(4, 8, num_layers=2, batch_first=batch_first, bidirectional=True).eval()
    scripted = torch.jit.script(layer)
    x, lengths = _inputs(5, 7, seed=1)
    x = x if batch_first else x.transpose(0, 1)
    _assert_same(_flat(scripted(x)), _flat(layer(x)))
    _assert_same(_flat(scripted(x, None, lengths)), _flat(layer(x, lengths=lengths)))
    unbatched = x[0] if batch_first else x[:, 0]
    _assert_same(_flat(scripted(unbatched)), _flat(layer(unbatched)))
    assert sorted(scripted.state_dict()) == sorted(layer.state_dict())


def test_script_lstm_with_projection_and_state():
    layer = rnnkit.LSTM(4, 8, proj_size=3, batch_first=True).eval()
    scripted = torch.jit.script(layer)
    x, lengths = _inputs(3, 6)
    state = (torch.randn(1, 3, 3), torch.randn(1, 3, 8))
    _assert_same(_flat(scripted(x, state, lengths)), _flat(layer(x, state, lengths=lengths)))


def test_scripted_layer_shares_the_parameters_and_saves(tmp_path):
    layer = rnnkit.GRU(4, 8)
    scripted = torch.jit.script(layer)
    with torch.no_grad():
        layer.weight_hh_l0.add_(1.0)
    x = torch.randn(5, 2, 4)
    _assert_same(_flat(scripted(x)), _flat(layer(x)))
    torch.jit.save(scripted, tmp_path / "gru.pt")
    _assert_same(_flat(torch.jit.load(tmp_path / "gru.pt")(x)), _flat(layer(x)))


def test_script_layer_inside_a_scripted_model():
    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = rnnkit.LSTM(4, 8, batch_first=True)
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(x, None, lengths)[0])

    model = Tagger().eval()
    x, lengths = _inputs(3, 6)
    torch.testing.assert_close(
        torch.jit.script(model)(x, lengths), model(x, lengths), atol=0, rtol=0
    )


@pytest.mark.parametrize("cls", [rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell])
def test_script_cell(cls):
    cell = cls(4, 8, backend="reference")
    scripted = torch.jit.script(cell)
    x = torch.randn(3, 4)
    want = leaves(cell(x))
    torch.testing.assert_close(leaves(scripted(x)), want, atol=1e-6, rtol=0)
    native = cls(4, 8)
    native.load_state_dict(cell.state_dict())
    _assert_same(leaves(torch.jit.script(native)(x)), leaves(native(x)))


# -- torch.jit.trace -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", LAYERS)
def test_trace_layer_with_and_without_lengths(cls):
    layer = cls(4, 8, num_layers=2, batch_first=True, bidirectional=True).eval()
    x, lengths = _inputs(3, 5)
    x2, lengths2 = _inputs(6, 9, seed=2)  # another batch and time length
    _assert_same(_flat(torch.jit.trace(layer, (x,))(x2)), _flat(layer(x2)))
    traced = torch.jit.trace(_WithLengths(layer), (x, lengths))
    _assert_same(_flat(traced(x2, lengths2)), _flat(layer(x2, lengths=lengths2)))


@pytest.mark.parametrize("name", cell_names())
def test_trace_every_registered_cell(name):
    layer = make_layer(name, 4, 8, num_layers=2, bidirectional=True).eval()
    x, lengths = _inputs(3, 5)
    x2, lengths2 = _inputs(6, 5, seed=2)  # the time length is fixed by the trace for Recurrent
    _assert_same(_flat(torch.jit.trace(layer, (x,))(x2)), _flat(layer(x2)), atol=1e-6)
    traced = torch.jit.trace(_WithLengths(layer), (x, lengths))
    _assert_same(_flat(traced(x2, lengths2)), _flat(layer(x2, lengths=lengths2)), atol=1e-6)


@pytest.mark.parametrize("cls", [rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell])
def test_trace_cell(cls):
    cell = cls(4, 8)
    x, h = torch.randn(3, 4), cell.initial_state(3)
    h = tuple(torch.randn_like(p) for p in h) if isinstance(h, tuple) else torch.randn_like(h)
    traced = torch.jit.trace(cell, (x, h))
    x2 = torch.randn(5, 4)
    h2 = cell.initial_state(5)
    _assert_same(leaves(traced(x2, h2)), leaves(cell(x2, h2)))


# -- torch.onnx.export -------------------------------------------------------------------------
def _check_onnx(exporter: str, name: str, with_lengths: bool) -> None:
    """Export with dynamic batch and time axes asked for; check parity on another batch size,
    and on another time length where ``_DYNAMIC_T`` says the exporter kept the time axis."""
    layer = make_layer(name, 4, 8, num_layers=2, bidirectional=True).eval()
    x, lengths = _inputs(3, 5)
    model = _WithLengths(layer) if with_lengths else layer
    args = (x, lengths) if with_lengths else (x,)
    names = ["x", "lengths"][: len(args)]
    if exporter == "legacy":
        onnx_bytes = _legacy_onnx(model, args, names, dynamic_time=True)
    else:
        onnx_bytes = _dynamo_onnx(model, args, dynamic_time=True)
    x2, lengths2 = _inputs(6, 5, seed=3)
    args2 = (x2, lengths2) if with_lengths else (x2,)
    _assert_same(_ort(onnx_bytes, *args2), _flat(model(*args2)), atol=1e-4)
    x3, lengths3 = _inputs(2, 9, seed=4)
    args3 = (x3, lengths3) if with_lengths else (x3,)
    if (exporter, name, with_lengths) in _DYNAMIC_T:
        _assert_same(_ort(onnx_bytes, *args3), _flat(model(*args3)), atol=1e-4)
    else:  # the list is exact: here the exporter fixed the time axis at the example's
        with pytest.raises(Exception):  # noqa: B017 (onnxruntime raises its own classes)
            _ort(onnx_bytes, *args3)


@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("name", cell_names())
def test_legacy_onnx_export_every_registered_cell(name, with_lengths):
    _check_onnx("legacy", name, with_lengths)


@pytest.mark.slow  # torch.export and onnxscript take 10-30 s a model on 2 shared cores
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("name", cell_names())
def test_dynamo_onnx_export_every_registered_cell(name, with_lengths):
    _check_onnx("dynamo", name, with_lengths)


@pytest.mark.parametrize("cls", [rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell])
def test_legacy_onnx_export_cell(cls):
    cell = cls(4, 8)
    x, h = torch.randn(3, 4), cell.initial_state(3)
    f = io.BytesIO()
    torch.onnx.export(
        cell, (x, h), f, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "B"}}
    )
    x2 = torch.randn(3, 4)
    _assert_same(_ort(f.getvalue(), x2, *leaves(h)), leaves(cell(x2, h)), atol=1e-4)


def test_legacy_onnx_export_many_to_many():
    model = rnnkit.ManyToMany(11, vocab_size=11, embedding_size=6, hidden_size=8, num_layers=2)
    model.eval()
    tokens = torch.randint(0, 11, (3, 5))
    f = io.BytesIO()
    torch.onnx.export(
        model,
        (tokens,),
        f,
        dynamo=False,
        input_names=["tokens"],
        dynamic_axes={"tokens": {0: "B", 1: "T"}},
    )
    tokens2 = torch.randint(0, 11, (4, 9))
    _assert_same(_ort(f.getvalue(), tokens2), _flat(model(tokens2)), atol=1e-4)


# -- torch.compile -------------------------------------------------------------------------------
# Dynamo refuses any torch.nn.RNN/LSTM/GRU (ours subclass them) unless allow_rnn is set; this
# is torch's own switch, needed for torch.nn.LSTM as well.
_allow_rnn = torch._dynamo.config.patch(allow_rnn=True)


@_allow_rnn
@pytest.mark.parametrize("with_lengths", [False, True])
def test_compile_lstm_has_no_graph_break(with_lengths):
    torch._dynamo.reset()
    layer = rnnkit.LSTM(4, 8, batch_first=True)
    x, lengths = _inputs(3, 4)
    args = (x, None, lengths) if with_lengths else (x,)
    explained = torch._dynamo.explain(layer)(*args)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


@pytest.mark.slow
@_allow_rnn
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("cls", LAYERS)
def test_compile_fullgraph_matches_eager(cls, with_lengths):
    # aot_eager: dynamo and AOT autograd, forward and backward, without inductor's code
    # generation (a minute a layer on 2 shared cores; the inductor test is below). AOT autograd
    # fails on torch.nn.LSTM's own CPU training kernel ("expected all
    # tensors_saved_with_vc_check to be Tensors", torch 2.13), so the fused LSTM takes dynamo
    # alone there
    torch._dynamo.reset()
    layer = cls(4, 8, num_layers=2, batch_first=True, bidirectional=True)
    x, lengths = _inputs(3, 5)
    backend = "eager" if cls is rnnkit.LSTM and not with_lengths else "aot_eager"
    compiled = torch.compile(layer, backend=backend, fullgraph=True)
    args = (x, None, lengths) if with_lengths else (x,)
    got, want = _flat(compiled(*args)), _flat(layer(*args))
    _assert_same(got, want, atol=1e-5)
    grads = torch.autograd.grad(sum(g.sum() for g in got), layer.weight_hh_l0)
    torch.testing.assert_close(
        grads, torch.autograd.grad(sum(w.sum() for w in want), layer.weight_hh_l0)
    )


@pytest.mark.slow
@_allow_rnn
@pytest.mark.parametrize("with_lengths", [False, True])
def test_compile_inductor_lstm_inference(with_lengths, monkeypatch):
    # inference only: inductor on CPU fails on torch.nn.LSTM itself in training
    # (mkldnn_rnn_layer, "expected Tensor()", torch 2.13), and so on ours, its subclass
    # Inductor imports setuptools, whose distutils shim asserts when an earlier test of the run
    # has imported the standard library's distutils (Python 3.11): keep the standard one then.
    monkeypatch.setenv("SETUPTOOLS_USE_DISTUTILS", "stdlib")
    torch._dynamo.reset()
    layer = rnnkit.LSTM(4, 8, num_layers=2, batch_first=True, bidirectional=True).eval()
    x, lengths = _inputs(3, 5)
    args = (x, None, lengths) if with_lengths else (x,)
    with torch.no_grad():
        got = _flat(torch.compile(layer, fullgraph=True)(*args))
        _assert_same(got, _flat(layer(*args)), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lnlstm", "mingru"])
def test_compile_fullgraph_custom_cell(name):
    torch._dynamo.reset()
    layer = make_layer(name, 4, 8, num_layers=2)
    x, lengths = _inputs(3, 5)
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    _assert_same(_flat(compiled(x)), _flat(layer(x)), atol=1e-5)
    _assert_same(_flat(compiled(x, None, lengths)), _flat(layer(x, lengths=lengths)), atol=1e-5)


# -- eager stays as it was ---------------------------------------------------------------------
def test_lengths_and_return_states_by_position_equal_by_keyword():
    layer = rnnkit.GRU(4, 8, batch_first=True)
    x, lengths = _inputs(3, 5)
    by_position = layer(x, None, lengths, True)
    by_keyword = layer(x, lengths=lengths, return_states=True)
    _assert_same(_flat(by_position), _flat(by_keyword))
    torch.testing.assert_close(by_position[2].h, by_keyword[2].h, atol=0, rtol=0)


def test_bad_lengths_still_fail_in_eager():
    with pytest.raises(ValueError, match="every length must lie in"):
        rnnkit.LSTM(4, 8, batch_first=True)(torch.randn(2, 3, 4), lengths=torch.tensor([3, 4]))


def test_script_recurrent_says_what_to_use_instead():
    with pytest.raises(RuntimeError, match=r"torch\.jit\.trace"):
        torch.jit.script(rnnkit.Recurrent(rnnkit.LayerNormLSTMCell, 4, 8))


@pytest.mark.parametrize("cls", [rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell])
def test_compile_cell_has_no_graph_break(cls):
    torch._dynamo.reset()
    cell = cls(4, 8)
    explained = torch._dynamo.explain(cell)(torch.randn(3, 4))
    assert explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.slow
@pytest.mark.parametrize("cls", [rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell])
def test_dynamo_onnx_export_cell(cls):
    cell = cls(4, 8)
    x, h = torch.randn(3, 4), cell.initial_state(3)
    program = torch.onnx.export(cell, (x, h), dynamo=True)
    x2 = torch.randn(3, 4)
    got = _ort(program.model_proto.SerializeToString(), x2, *leaves(h))
    _assert_same(got, leaves(cell(x2, h)), atol=1e-4)
