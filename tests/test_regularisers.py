"""Variational dropout, zoneout, weight drop and chrono initialisation: each against a loop
written out by hand from its paper's equation, in training and in evaluation, and each flag
through the command line (train, sample, evaluate, and a run stored before the flags existed)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from test_cell_registry import _lm_args, _text
from torch import nn

import rnnkit
from rnnkit.cells.regularisers import RegularisedCell
from rnnkit.cli.main import main
from rnnkit.init import chrono_
from rnnkit.layers.build import make_layer
from rnnkit.layers.weight_drop import WeightDropGRU, WeightDropLSTM, WeightDropRNN
from rnnkit.tasks.lm.task import LMModelConfig

CELLS = {"lstm": rnnkit.LSTMCell, "gru": rnnkit.GRUCell, "rnn": rnnkit.RNNCell}
TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class Recorder(nn.Module):
    """A cell that records what it reads: the input and the ``h`` of an ``(h, c)`` state; its
    new state is ones, so that every ``h`` it reads after the first is exactly the mask."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.inputs: list[torch.Tensor] = []
        self.states: list[torch.Tensor] = []

    def initial_state(self, batch_size, *, dtype=None, device=None):
        h = torch.ones(batch_size, self.hidden_size, dtype=dtype, device=device)
        return h, h.clone()

    def forward(self, x, state):
        self.inputs.append(x)
        self.states.append(state[0])
        ones = torch.ones_like(state[0])
        return ones, (ones, ones)


# -- variational dropout ---------------------------------------------------------------------
def test_variational_masks_are_constant_over_time_and_differ_between_sequences():
    torch.manual_seed(0)
    rnn = rnnkit.Recurrent(RegularisedCell, 6, 40, base=Recorder, recurrent_dropout=0.5)
    rec = rnn.cells[0].cell
    rnn(torch.ones(7, 4, 6))  # (T, B, I)
    x0, h1 = rec.inputs[0], rec.states[1]
    assert set(x0.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1/(1-p)
    assert set(h1.unique().tolist()) == {0.0, 2.0}
    for t in range(7):
        assert torch.equal(rec.inputs[t], x0)  # one input mask per sequence
    for t in range(1, 7):
        assert torch.equal(rec.states[t], h1)  # one hidden mask per sequence
    assert not torch.equal(x0[0], x0[1]) and not torch.equal(h1[0], h1[1])
    rec.inputs.clear()
    rnn(torch.ones(7, 4, 6))
    assert not torch.equal(rec.inputs[0], x0)  # a new sequence, new masks


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_variational_dropout_matches_the_paper_loop(kind):
    """Gal & Ghahramani: the masks on x and on h where it enters W_hh; a GRU's z h reads the
    undropped state."""
    torch.manual_seed(1)
    rnn = rnnkit.Recurrent(RegularisedCell, 5, 7, base=CELLS[kind], recurrent_dropout=0.4).double()
    cell = rnn.cells[0]
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    out, h_n = rnn(x)
    mx, mh = cell._draws["x"], cell._draws["h"]
    c = cell.cell
    h = torch.zeros(3, 7, dtype=torch.float64)
    state = (h, h.clone()) if kind == "lstm" else h
    ys = []
    for t in range(6):
        xp = F.linear(x[t] * mx, c.weight_ih, c.bias_ih)
        h = state[0] if kind == "lstm" else state
        hp = F.linear(h * mh, c.weight_hh, c.bias_hh)
        if kind == "lstm":
            i, f, g, o = (xp + hp).chunk(4, -1)
            cc = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
            state = (torch.sigmoid(o) * torch.tanh(cc), cc)
        elif kind == "gru":
            r = torch.sigmoid(xp[:, :7] + hp[:, :7])
            z = torch.sigmoid(xp[:, 7:14] + hp[:, 7:14])
            n = torch.tanh(xp[:, 14:] + r * hp[:, 14:])
            state = (1 - z) * n + z * h
        else:
            state = torch.tanh(xp + hp)
        ys.append(state[0] if kind == "lstm" else state)
    torch.testing.assert_close(out, torch.stack(ys))


def test_variational_dropout_on_lngru_keeps_the_interpolation_undropped():
    """lngru as its docstring's equation, the hidden mask only inside W_hh h."""
    torch.manual_seed(11)
    rnn = make_layer("lngru", 4, 6, recurrent_dropout=0.5, weight_drop=0.3, batch_first=False)
    rnn = rnn.double()
    wrapper = rnn.cells[0]
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    out, _ = rnn(x)
    mx, mh, w = wrapper._draws["x"], wrapper._draws["h"], wrapper._draws["w_hh"]
    c = wrapper.cell
    h = torch.zeros(2, 6, dtype=torch.float64)
    ys = []
    for t in range(5):
        a = c.ln_ih(F.linear(x[t] * mx, c.weight_ih)) + c.bias_ih
        u = c.ln_hh(F.linear(h * mh, w)) + c.bias_hh
        r = torch.sigmoid(a[:, :6] + u[:, :6])
        z = torch.sigmoid(a[:, 6:12] + u[:, 6:12])
        n = torch.tanh(a[:, 12:] + r * u[:, 12:])
        h = (1 - z) * n + z * h
        ys.append(h)
    torch.testing.assert_close(out, torch.stack(ys))
    rnn.eval()  # and in evaluation it is the cell itself
    plain = rnnkit.Recurrent(rnnkit.LayerNormGRUCell, 4, 6).double()
    plain.cells[0].load_state_dict(c.state_dict())
    torch.testing.assert_close(rnn(x)[0], plain(x)[0])


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_the_minimal_cells_keep_their_scan_under_input_dropout(cell, monkeypatch):
    """Their state enters no matrix: only the input mask applies, and the scan still runs."""
    torch.manual_seed(12)
    rnn = make_layer(cell, 3, 5, recurrent_dropout=0.5, batch_first=False).double()
    wrapper = rnn.cells[0]
    calls = []
    scan = type(wrapper.cell).scan
    monkeypatch.setattr(type(wrapper.cell), "scan", lambda *a: calls.append(1) or scan(*a))
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, _ = rnn(x)
    assert calls  # the whole sequence at once
    mx = wrapper._draws["x"]
    h = torch.zeros(2, 5, dtype=torch.float64)
    ys = []
    for t in range(6):
        y, h = wrapper.cell(x[t] * mx, h)
        ys.append(y)
    torch.testing.assert_close(out, torch.stack(ys))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("option", ["recurrent_dropout", "weight_drop"])
def test_in_evaluation_nothing_is_dropped(kind, option):
    torch.manual_seed(2)
    layer = make_layer(kind, 4, 6, num_layers=2, bidirectional=True, **{option: 0.5})
    ref = TORCH[kind](4, 6, num_layers=2, bidirectional=True, batch_first=True)
    if option == "weight_drop":
        ref.load_state_dict(layer.state_dict())
    else:  # the unrolled cells hold the same tensors under Recurrent's names
        for k, cell in enumerate(layer.cells):
            s = f"_l{k // 2}{'_reverse' if k % 2 else ''}"
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, name + s).data.copy_(getattr(cell.cell, name))
    x = torch.randn(3, 5, 4)
    layer.eval()
    out, _ = layer(x)
    torch.testing.assert_close(out, ref(x)[0])
    layer.train()
    assert not torch.allclose(layer(x)[0], out)  # and in training something is


# -- weight drop -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, ref_cls", [(WeightDropLSTM, nn.LSTM), (WeightDropGRU, nn.GRU), (WeightDropRNN, nn.RNN)]
)
def test_weight_drop_keeps_torch_names_and_matches_the_dropped_matrices(cls, ref_cls):
    """The fused kernel with W_hh dropped once per forward; gradients reach the raw weight."""
    torch.manual_seed(3)
    layer = cls(4, 6, num_layers=2, bidirectional=True, weight_drop=0.5).double()
    ref = ref_cls(4, 6, num_layers=2, bidirectional=True).double()
    assert list(layer.state_dict()) == list(ref.state_dict())
    layer.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    torch.manual_seed(4)
    out, _ = layer(x)
    out.square().sum().backward()
    # the reference: the same draws (same order, same generator), then torch's own layer
    params = {n: p.detach().clone().requires_grad_() for n, p in ref.named_parameters()}
    torch.manual_seed(4)
    dropped = {
        n: F.dropout(p, 0.5, training=True) if n.startswith("weight_hh") else p
        for n, p in params.items()
    }
    want, _ = torch.func.functional_call(ref, dropped, (x,))
    want.square().sum().backward()
    torch.testing.assert_close(out, want)
    for n, p in layer.named_parameters():
        torch.testing.assert_close(p.grad, params[n].grad, msg=n)
    zero = params["weight_hh_l0"].grad == 0
    assert zero.float().mean() > 0.3  # the dropped entries get no gradient
    # the reference path takes the same dropped matrices
    layer.backend = "reference"
    torch.manual_seed(4)
    torch.testing.assert_close(layer(x)[0], out)


def test_weight_drop_draws_anew_each_forward_and_not_in_evaluation():
    torch.manual_seed(5)
    layer = make_layer("lstm", 3, 8, weight_drop=0.5)
    assert type(layer) is WeightDropLSTM
    x = torch.randn(2, 4, 3)
    a, b = layer(x)[0], layer(x)[0]
    assert not torch.allclose(a, b)
    assert isinstance(layer.weight_hh_l0, nn.Parameter)  # the parameter itself is never replaced
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0])


def test_weight_drop_on_unrolled_cells_uses_one_matrix_per_forward():
    """lnlstm through Recurrent: the dropped W_hh is the same at every step."""
    torch.manual_seed(6)
    layer = make_layer("lnlstm", 3, 5, weight_drop=0.5, batch_first=False).double()
    cell = layer.cells[0]
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    out, _ = layer(x)
    w = cell._draws["w_hh"]
    assert (w == 0).any()
    inner = cell.cell
    state = inner.initial_state(2, dtype=torch.float64)
    ys = []
    for t in range(4):
        y, state = torch.func.functional_call(inner, {"weight_hh": w}, (x[t], state))
        ys.append(y)
    torch.testing.assert_close(out, torch.stack(ys))


# -- zoneout -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_zoneout_in_evaluation_is_its_expectation(kind):
    torch.manual_seed(7)
    p = 0.3
    rnn = rnnkit.Recurrent(RegularisedCell, 4, 6, base=CELLS[kind], zoneout=p).double().eval()
    cell = rnn.cells[0].cell
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    out, _ = rnn(x)
    state = cell.initial_state(2, dtype=torch.float64)
    ys = []
    for t in range(5):
        new = cell(x[t], state)
        if kind == "lstm":
            state = tuple(p * o + (1 - p) * n for o, n in zip(state, new))
            ys.append(state[0])
        else:
            state = p * state + (1 - p) * new
            ys.append(state)
    torch.testing.assert_close(out, torch.stack(ys))


def test_zoneout_in_training_keeps_each_unit_or_takes_the_update():
    torch.manual_seed(8)
    rnn = rnnkit.Recurrent(RegularisedCell, 4, 50, base=rnnkit.LSTMCell, zoneout=0.5).double()
    cell = rnn.cells[0].cell
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    _, _, states = rnn(x, return_states=True)
    kept = []
    prev = cell.initial_state(3, dtype=torch.float64)
    for t in range(6):
        now = (states.h[0, t], states.c[0, t]) if hasattr(states, "c") else states[0][t]
        fresh = cell(x[t], prev)
        for o, n, s in zip(prev, fresh, now):
            is_old, is_new = torch.isclose(s, o), torch.isclose(s, n)
            assert bool((is_old | is_new).all())
            kept.append(is_old & ~is_new)
        prev = now
    share = torch.cat([k.flatten() for k in kept]).double().mean()
    assert 0.35 < float(share) < 0.65  # about p of the units kept their value


# -- chrono ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru", "lnlstm", "lngru"])
def test_chrono_biases_follow_the_paper(kind):
    """Tallec & Ollivier: b_f ~ log U(1, T_max - 1), b_i = -b_f (LSTM); the GRU's keep gate z."""
    T, H = 100, 2000
    torch.manual_seed(9)
    layer = make_layer(kind, 3, H, init="chrono", max_dependency=T)
    if kind in ("lstm", "gru"):
        b_in, b_rec = layer.bias_ih_l0, layer.bias_hh_l0
    elif kind == "lnlstm":
        b_in, b_rec = layer.cells[0].bias, None
    else:
        b_in, b_rec = layer.cells[0].bias_ih, layer.cells[0].bias_hh
    b_f = b_in[H : 2 * H].detach()
    u = b_f.exp()
    assert float(u.min()) >= 1 - 1e-4 and float(u.max()) <= T - 1 + 1e-3
    assert abs(float(u.mean()) - T / 2) < 3  # uniform on [1, T - 1]: mean T / 2, sd 28 / sqrt(H)
    if kind in ("lstm", "lnlstm"):
        torch.testing.assert_close(b_in[:H].detach(), -b_f)
    if b_rec is not None:
        assert (
            torch.all(b_rec[: 2 * H] == 0) if "lstm" in kind else torch.all(b_rec[H : 2 * H] == 0)
        )


def test_chrono_refuses_what_it_cannot_set():
    with pytest.raises(ValueError, match="--max-dependency"):
        make_layer("lstm", 3, 4, init="chrono")
    with pytest.raises(ValueError, match="chrono is for lstm, gru"):
        make_layer("rnn", 3, 4, init="chrono", max_dependency=10)
    with pytest.raises(TypeError, match="holds no LSTM or GRU"):
        chrono_(nn.RNN(3, 4), 10)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(cell="mingru", weight_drop=0.2), "mingru has none"),
        (dict(cell="lstm", init="irnn"), "irnn is for plain RNNs"),
        (dict(cell="lnlstm", init="orthogonal"), "orthogonal is for the fused"),
        (dict(cell="lstm", zoneout=1.0), "--zoneout must be a number in"),
        (dict(cell="gru", recurrent_dropout=-0.1), "--recurrent-dropout must be"),
        (dict(cell="gru", max_dependency=5), "--max-dependency is for --init chrono"),
    ],
)
def test_bad_options_get_one_line_naming_the_flag(options, message):
    with pytest.raises(ValueError, match=message):
        LMModelConfig(**options)


# -- the command line --------------------------------------------------------------------------
FLAGS = {
    "recurrent-dropout": ["--recurrent-dropout", "0.2"],
    "weight-drop": ["--weight-drop", "0.3"],
    "zoneout": ["--zoneout", "0.1"],
    "chrono": ["--init", "chrono", "--max-dependency", "16"],
}


@pytest.mark.slow
@pytest.mark.parametrize("which", list(FLAGS))
def test_each_flag_trains_samples_and_evaluates(tmp_path, capsys, which):
    data, run = _text(tmp_path), tmp_path / "lm"
    assert main([*_lm_args(data, run, "lstm", 10), *FLAGS[which]]) == 0
    model = json.loads((run / "config.json").read_text())["task"]["model"]
    key = FLAGS[which][0][2:].replace("-", "_")
    assert model[key] == ("chrono" if which == "chrono" else float(FLAGS[which][1]))
    capsys.readouterr()
    args = ["sample", str(run), "--prime", "the ", "--length", "20", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0  # evaluation draws no masks: the same seed, the same text
    assert capsys.readouterr().out == first
    assert main(["evaluate", str(run), "--split", "val", "--json"]) == 0
    assert math.isfinite(json.loads(capsys.readouterr().out)["loss"])
    # a resumed run rebuilds the same model from its stored config
    resume = ["train", "lm", "--out", str(run), "--resume", "--max-steps", "14", "--no-progress"]
    assert main(resume) == 0
    assert json.loads((run / "config.json").read_text())["task"]["model"] == model


@pytest.mark.slow
def test_a_run_stored_before_the_flags_existed_still_loads(tmp_path, capsys):
    data, run = _text(tmp_path), tmp_path / "lm"
    assert main(_lm_args(data, run, "lstm", 4)) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "val", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)["loss"]
    path = run / "config.json"
    config = json.loads(path.read_text())
    for key in ("recurrent_dropout", "weight_drop", "zoneout", "init", "max_dependency"):
        del config["task"]["model"][key]
    path.write_text(json.dumps(config))
    assert main(["evaluate", str(run), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == before


def test_all_flags_together_train_sample_and_evaluate(tmp_path, capsys):
    """The default suite's quick pass over the command line (each flag alone: the slow tests)."""
    data, run = _text(tmp_path), tmp_path / "lm"
    flags = [f for option in FLAGS.values() for f in option]
    args = [*_lm_args(data, run, "lstm", 3), *flags, "--hidden-size", "8", "--num-layers", "1"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--prime", "the ", "--length", "5", "--seed", "1"]) == 0
    assert main(["evaluate", str(run), "--split", "val", "--json"]) == 0
    assert math.isfinite(json.loads(capsys.readouterr().out.splitlines()[-1])["loss"])


@pytest.mark.parametrize("cls", [WeightDropLSTM, WeightDropGRU])
def test_weight_drop_gradcheck(cls):
    """Through the mask to the raw W_hh and to the input, in float64 (the same draw each call)."""
    torch.manual_seed(10)
    layer = cls(2, 3, weight_drop=0.5).double()
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    w = layer.weight_hh_l0.detach().clone().requires_grad_()

    def run(x, w):
        torch.manual_seed(0)
        return torch.func.functional_call(layer, {"weight_hh_l0": w}, (x,))[0]

    assert torch.autograd.gradcheck(run, (x, w))
    assert not torch.allclose(run(x, w), layer.eval()(x)[0])  # the draw was really in there


def test_weight_drop_with_lengths_native_equals_reference():
    """Packed on the fused kernel, masked in the reference loop: the same dropped matrices."""
    layer = WeightDropGRU(3, 4, num_layers=2, bidirectional=True, batch_first=True, weight_drop=0.5)
    layer = layer.double()
    x, lengths = torch.randn(3, 6, 3, dtype=torch.float64), torch.tensor([6, 2, 4])
    torch.manual_seed(1)
    native = layer(x, lengths=lengths)[0]
    layer.backend = "reference"
    torch.manual_seed(1)
    torch.testing.assert_close(layer(x, lengths=lengths)[0], native)
