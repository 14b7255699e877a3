"""Diagnostics: gradient flow against a hand-unrolled loop, verdicts, init helpers, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

import rnnkit
from rnnkit import init as rinit
from rnnkit.cli.main import main
from rnnkit.diagnose import fresh_layer, gradient_flow, judge


def _hand_unrolled_norms(layer, x, v, loss_at="last"):
    """||dL/dh_t|| from a plain Python loop over torch.nn.RNNCell/LSTMCell/GRUCell."""
    kind = type(layer).__name__
    w = {k: getattr(layer, f"{k}_l0") for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    H = layer.hidden_size
    B, T, _ = x.shape
    h = torch.zeros(B, H, dtype=x.dtype)
    c = torch.zeros(B, H, dtype=x.dtype)
    hs, losses = [], []
    for t in range(T):
        gi = x[:, t] @ w["weight_ih"].T + w["bias_ih"]
        gh = h @ w["weight_hh"].T + w["bias_hh"]
        if kind == "RNN":
            h = torch.tanh(gi + gh) if layer.nonlinearity == "tanh" else torch.relu(gi + gh)
        elif kind == "LSTM":
            i, f, g, o = (gi + gh).chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            ir, iz, inn = gi.chunk(3, -1)
            hr, hz, hn = gh.chunk(3, -1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            n = torch.tanh(inn + r * hn)
            h = (1 - z) * n + z * h
        hs.append(h)
        losses.append(h @ v)
    loss = losses[-1].sum() if loss_at == "last" else torch.stack(losses).sum()
    grads = torch.autograd.grad(loss, hs)
    return [float(g.norm(dim=-1).mean()) for g in grads], hs


@pytest.mark.parametrize(
    "kind,kw", [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]
)
@pytest.mark.parametrize("loss_at", ["last", "every"])
def test_norms_equal_a_hand_unrolled_loop(kind, kw, loss_at):
    torch.manual_seed(0)
    layer = getattr(rnnkit, kind)(3, 5, batch_first=True, dtype=torch.float64, **kw)
    x = torch.randn(4, 12, 3, dtype=torch.float64)
    v = torch.randn(5, dtype=torch.float64)
    flow = gradient_flow(layer, x, loss_fn=lambda out: out @ v, loss_at=loss_at, jacobians=False)
    expected, _ = _hand_unrolled_norms(layer, x, v, loss_at)
    torch.testing.assert_close(torch.tensor(flow.norms[0]), torch.tensor(expected))


def test_jacobian_singular_values_match_autograd_jacobian():
    torch.manual_seed(1)
    layer = rnnkit.GRU(3, 4, batch_first=True, dtype=torch.float64)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    flow = gradient_flow(layer, x, jacobian_batch=2, top_k=4)

    def h_last_from(t, h_t, b):
        """Run from step t+1 with state h_t, return h_T (one sequence)."""
        if t + 1 == x.size(1):
            return h_t
        out, _ = layer(x[b : b + 1, t + 1 :], h_t.unsqueeze(0).unsqueeze(0))
        return out[0, -1]

    for t in (0, 3, 5):
        svs = []
        for b in range(2):
            _, _, states = layer(x[b : b + 1], return_states=True)
            h_t = states.at(layer=0, part=0)[t][0].detach()
            J = torch.autograd.functional.jacobian(lambda h, t=t, b=b: h_last_from(t, h, b), h_t)
            svs.append(torch.linalg.svdvals(J))
        expected = torch.stack(svs).mean(0)
        torch.testing.assert_close(
            torch.tensor(flow.singular_values[0][t]), expected.float(), rtol=1e-4, atol=1e-6
        )
        assert flow.jacobian_norms[0][t] == pytest.approx(float(expected[0]), rel=1e-4)


def test_verdicts_scaled_down_vanishes_scaled_up_explodes():
    torch.manual_seed(0)
    x = 0.01 * torch.randn(8, 60, 4)
    for cell in ("rnn", "rnn_relu"):
        small = fresh_layer(cell, 4, 32, init="orthogonal", gain=0.5)
        big = fresh_layer(cell, 4, 32, init="orthogonal", gain=1.5)
        with torch.no_grad():  # stay in the unsaturated regime, where the gain rules
            big.bias_ih_l0.zero_(), big.bias_hh_l0.zero_()
        down = gradient_flow(small, x, jacobians=False)
        up = gradient_flow(big, x[:, :20], jacobians=False)
        assert down.verdict == "vanishing", down.summary()
        assert 0 < down.horizon < 20  # 0.5^d < 1e-3 from d = 10 on
        assert up.verdict == "exploding", up.summary()
        assert up.horizon is None
        assert "exploding" in up.summary() and "horizon" in down.summary()


def test_judge_on_plain_sequences():
    d = torch.arange(50, dtype=torch.float64)
    v = judge((0.5**d).flip(0))
    assert v.verdict == "vanishing" and v.horizon == 10
    assert v.rate == pytest.approx(torch.log10(torch.tensor(0.5)).item())
    assert judge((1.2**d).flip(0)).verdict == "exploding"
    held = judge((0.99**d).flip(0))
    assert held.verdict == "holds" and held.horizon is None
    assert held.estimate == pytest.approx(3 / -torch.log10(torch.tensor(0.99)).item(), rel=1e-6)


def test_lstm_forget_bias_lengthens_the_horizon():
    """A fresh LSTM's forget gate sits near 0.5: its gradient decays fast until the bias
    opens it."""
    x = torch.randn(8, 80, 4, generator=torch.Generator().manual_seed(0))
    plain = gradient_flow(fresh_layer("lstm", 4, 32), x, jacobians=False)
    opened = gradient_flow(fresh_layer("lstm", 4, 32, forget_bias=3.0), x, jacobians=False)
    assert plain.verdict == "vanishing" and plain.horizon < 20
    assert opened.horizon is None or opened.horizon > 3 * plain.horizon
    assert plain.cell_norms is not None and len(plain.cell_norms[0]) == 80


def test_custom_cell_and_two_layers():
    x = torch.randn(3, 15, 4)
    flow = gradient_flow(fresh_layer("lnlstm", 4, 8, num_layers=2), x, jacobian_batch=2)
    assert len(flow.norms) == 2 and len(flow.verdicts) == 2
    assert len(flow.singular_values[1][0]) == 3
    flow = gradient_flow(fresh_layer("gru", 4, 8, num_layers=2), x)
    assert len(flow.jacobian_norms) == 2


def test_native_layer_is_restored():
    layer = rnnkit.LSTM(2, 4, batch_first=True, backend="native").train()
    gradient_flow(layer, torch.randn(2, 5, 2), jacobians=False)
    assert layer.backend == "native" and layer.training


def test_verdict_tags():
    assert judge([1e-5, 1e-2, 1.0]).tag(3) == "horizon 2"
    assert judge([100.0, 10.0, 1.0]).tag(3) == "exploding"
    assert judge([0.9, 0.95, 1.0]).tag(3) == "> 2"


def test_init_helpers():
    rnn = rinit.orthogonal_(rnnkit.RNN(3, 6, num_layers=2), gain=2.0)
    for k in range(2):
        w = getattr(rnn, f"weight_hh_l{k}")
        torch.testing.assert_close(w @ w.T, 4 * torch.eye(6), atol=1e-5, rtol=1e-5)
    lstm = rinit.orthogonal_(rnnkit.LSTM(3, 6, bidirectional=True))
    for block in lstm.weight_hh_l0_reverse.detach().chunk(4):
        torch.testing.assert_close(block @ block.T, torch.eye(6), atol=1e-5, rtol=1e-5)
    irnn = rinit.irnn_(rnnkit.RNN(3, 6, nonlinearity="relu"))
    torch.testing.assert_close(irnn.weight_hh_l0.detach(), torch.eye(6))
    assert float(irnn.bias_hh_l0.detach().abs().sum() + irnn.bias_ih_l0.detach().abs().sum()) == 0
    lstm = rinit.forget_gate_bias_(rnnkit.LSTM(3, 6), 1.5)
    total = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    assert torch.all(total[6:12] == 1.5)
    gru = rinit.forget_gate_bias_(torch.nn.GRU(3, 6), -1.0)
    assert torch.all(gru.bias_ih_l0[6:12] == -1.0)
    with pytest.raises(TypeError):
        rinit.irnn_(rnnkit.LSTM(3, 6))
    with pytest.raises(TypeError):
        rinit.forget_gate_bias_(rnnkit.RNN(3, 6))
    with pytest.raises(TypeError):
        rinit.orthogonal_(torch.nn.Linear(3, 3))


def test_irnn_relu_holds_its_gradient():
    x = 0.1 * torch.randn(4, 100, 3)
    flow = gradient_flow(fresh_layer("rnn_relu", 3, 16, init="irnn"), x, jacobians=False)
    assert flow.verdict == "holds"
    default = gradient_flow(fresh_layer("rnn", 3, 16), x, jacobians=False)
    assert default.verdict == "vanishing"


def test_cli_gradients_table_and_json(tmp_path, capsys):
    png = tmp_path / "flow.png"
    args = ["diagnose", "gradients", "--cell", "rnn,lstm", "--steps", "30"]
    args += ["--hidden-size", "8", "--batch-size", "4", "--png", str(png)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "||dL/dh_t||" in out and "lstm:" in out and "rnn:" in out
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    args += ["--json", "--forget-bias", "1", "--init", "default,orthogonal", "--no-jacobians"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    labels = [m["label"] for m in data["models"]]
    assert labels == [
        "rnn",
        "rnn orthogonal",
        "lstm",
        "lstm fb=1",
        "lstm orthogonal",
        "lstm orthogonal fb=1",
    ]
    m = data["models"][0]
    assert len(m["norms"][0]) == 30 and "horizon" in m and m["verdict"] in ("vanishing", "holds")
    assert m["singular_values"] is None and m["jacobian_norms"] is None


def test_gates_rebuild_the_states():
    """The recomputed gates give back the layer's own c_t and h_t (both layers)."""
    from rnnkit.diagnose.gates import gate_values

    torch.manual_seed(0)
    lstm = rnnkit.LSTM(3, 5, num_layers=2, batch_first=True, dtype=torch.float64)
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    gates = gate_values(lstm, x)
    _, _, states = lstm(x, return_states=True)
    below = x
    for k in range(2):
        c = torch.stack(states.at(layer=k, part=1), 1)
        h = torch.stack(states.at(layer=k, part=0), 1)
        c_prev = torch.cat([torch.zeros_like(c[:, :1]), c[:, :-1]], 1)
        g_part = (c - gates[k]["forget"] * c_prev) / gates[k]["input"]  # tanh(g)
        assert float(g_part.detach().abs().max()) <= 1.0
        torch.testing.assert_close(h, gates[k]["output"] * torch.tanh(c))
        # every gate from the weights, by hand: c = f * c_prev + i * tanh(g), h = o * tanh(c)
        h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], 1)
        w_ih, w_hh = getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")
        b = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
        i, f, g, o = (below @ w_ih.T + h_prev @ w_hh.T + b).detach().chunk(4, -1)
        for name, pre in (("input", i), ("forget", f), ("output", o)):
            torch.testing.assert_close(gates[k][name], pre.sigmoid())
        c_hand = f.sigmoid() * c_prev + i.sigmoid() * g.tanh()
        torch.testing.assert_close(c.detach(), c_hand)
        torch.testing.assert_close(h.detach(), o.sigmoid() * c_hand.tanh())
        below = h.detach()


def test_gate_values_on_a_native_layer():
    """A memory model's layer runs on the fused kernels; the gates take its reference path."""
    from rnnkit.diagnose.gates import gate_values
    from rnnkit.diagnose.memory import MemoryModel

    torch.manual_seed(0)
    model = MemoryModel("copy", "lstm", 6).train()
    x = model.features(torch.randint(0, 10, (3, 8)))
    gates = gate_values(model.rnn, x)
    assert model.rnn.backend == "native" and model.rnn.training
    assert gates[0]["forget"].shape == (3, 8, 6)
    assert float(gates[0]["forget"].mean()) > 0.6  # the forget-gate bias of 1


def test_gate_stats_see_the_forget_bias():
    from rnnkit.diagnose.gates import gate_stats

    x = torch.randn(4, 30, 3)
    plain = gate_stats(fresh_layer("lstm", 3, 16), x)
    biased = gate_stats(fresh_layer("lstm", 3, 16, forget_bias=5.0), x)
    assert 0.4 < plain.layers[0]["forget"].mean < 0.6
    assert biased.layers[0]["forget"].mean > 0.95 and biased.layers[0]["forget"].open > 0.5
    gru = gate_stats(fresh_layer("gru", 3, 16), x)
    assert set(gru.layers[0]) == {"reset", "update"}
    assert len(gru.layers[0]["update"].per_step) == 30
    with pytest.raises(TypeError):
        gate_stats(rnnkit.RNN(3, 4), x)


def test_cli_gates(tmp_path, capsys):
    png = tmp_path / "gates.png"
    args = ["diagnose", "gates", "--cell", "lstm,gru,rnn", "--steps", "20", "--png", str(png)]
    assert main([*args, "--forget-bias", "2"]) == 0
    out = capsys.readouterr().out
    assert "forget" in out and "update" in out and "lstm fb=2" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("cell", ["rnn", "rnn_relu", "lstm", "gru"])
def test_unroll_prints_every_step(cell, capsys):
    args = ["diagnose", "unroll", "--cell", cell, "--values", "1,0;0,1;0.5,0.5"]
    assert main([*args, "--hidden-size", "3", "--decimals", "2"]) == 0
    out = capsys.readouterr().out
    assert "h_0 → [" in out and "h_3" in out and "x_3" in out and "y_3" in out
    assert "(3,)" in out and "[  1.00   0.00 ]" in out
    if cell == "lstm":
        assert "forget gate" in out and "c_3" in out
    if cell == "gru":
        assert "update gate" in out


def test_unroll_values_are_the_layers_own():
    from rnnkit.diagnose.unroll_print import small_model, unrolled_text

    layer, head = small_model("gru", 2, 3, 1, seed=3)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = unrolled_text(layer, head, x, decimals=4)
    with torch.no_grad():
        out, _ = layer(x.unsqueeze(0))
    h2 = " ".join(f"{float(v):8.4f}" for v in out[0, 1])
    assert f"[{h2} ]" in text


def test_text_features_on_python():
    from rnnkit.diagnose.hidden import text_features

    text = 'def f(a, b):\n    s = "x(y)"  # c\n    return [a]\n'
    f = text_features(text)
    at = {name: [int(v) for v in t.tolist()] for name, t in f.items()}
    q = text.index('"x')
    assert at["in_quotes"][q : q + 6] == [1] * 6 and at["in_quotes"][q - 1] == 0
    assert at["in_quotes"][q + 6] == 0
    assert at["bracket_depth"][text.index("a,")] == 1
    assert at["bracket_depth"][text.index("y)")] == 0  # brackets inside a string do not count
    assert at["in_comment"][text.index("c\n")] == 1 and at["in_comment"][text.index("return")] == 0
    assert at["indentation"][text.index("return")] == 4 and at["indentation"][0] == 0
    assert at["line_position"][text.index("return")] == 4


def _tiny_char_lm(text):
    from rnnkit.architectures import ManyToMany
    from rnnkit.text.vocab import Vocab

    vocab = Vocab.build(text, "char")
    torch.manual_seed(0)
    model = ManyToMany(len(vocab), vocab_size=len(vocab), embedding_size=8, hidden_size=12)
    return model, vocab


def test_hidden_trace_and_well_formed_html(tmp_path):
    import xml.etree.ElementTree as ET

    from rnnkit.diagnose.hidden import (
        Trace,
        find_units,
        heatmap_html,
        heatmap_png,
        hidden_trace,
        text_features,
    )

    text = 'x = "a < b & c"\nif x:\n    y = (1, [2])\n' * 5
    model, vocab = _tiny_char_lm(text)
    trace = hidden_trace(model, vocab, text)
    assert trace.values.shape == (len(text), 24) and trace.names[12] == "c0"
    # the trace is the model's own hidden state
    out, _ = model.rnn(model.embedding(vocab.encode(text).unsqueeze(0)))
    torch.testing.assert_close(trace.values[:, :12], out[0].detach())
    found = find_units(trace, text_features(text), top=2)
    assert set(found) == {
        "in_quotes",
        "line_position",
        "indentation",
        "in_comment",
        "bracket_depth",
    }
    # a unit planted to be (a scaled copy of) a feature is found first, with r = 1
    features = text_features(text)
    planted = trace.values.clone()
    planted[:, 5] = 3.0 * features["bracket_depth"] - 1.0
    match = find_units(Trace(text, planted, trace.names), features, top=1)["bracket_depth"][0]
    assert match.unit == 5 and match.r == pytest.approx(1.0, abs=1e-5)
    page = heatmap_html(trace, [0, 13], tmp_path / "h.html", title="a <test>", notes={0: "x & y"})
    source = page.read_text(encoding="utf-8")
    root = ET.fromstring(source.split("\n", 1)[1])  # well-formed: parses as XML after DOCTYPE
    assert root.tag == "html"
    assert len(root.findall(".//pre")) == 2
    assert len(root.findall(".//pre")[0].findall("span")) == len(text)
    assert "a &lt;test&gt;" in source and "<script" not in source and "http" not in source
    png = heatmap_png(trace, [0, 13], tmp_path / "h.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_hidden_on_a_run(tmp_path, capsys):
    from rnnkit.tasks.lm.run import train_lm
    from rnnkit.tasks.lm.task import LMDataConfig, LMModelConfig
    from rnnkit.training import TrainConfig

    corpus = tmp_path / "c.txt"
    corpus.write_text('def f(x):\n    return "s(%d)" % (x, )  # n\n' * 200)
    run = tmp_path / "run"
    train_lm(
        LMModelConfig(hidden_size=16, embedding_size=8),
        LMDataConfig(data=str(corpus), bptt=16),
        TrainConfig(out=str(run), max_steps=3, batch_size=4, eval_every=3, progress=False),
    )
    stem = tmp_path / "pic"
    args = ["diagnose", "hidden", str(run), "--length", "300", "--show", "100"]
    assert main([*args, "--stem", str(stem)]) == 0
    out = capsys.readouterr().out
    assert "bracket_depth" in out and "in_quotes" in out
    assert (tmp_path / "pic.html").exists() and (tmp_path / "pic.png").exists()
    assert main([*args, "--stem", str(stem), "--units", "0,3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["units"] == ["h0", "h3"] and data["characters"] == 300
    # the gradient flow and gates of the trained checkpoint
    args = ["diagnose", "gradients", "--run", str(run), "--steps", "20", "--json"]
    assert main([*args, "--png", str(tmp_path / "g.png"), "--batch-size", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["models"][0]["label"] == "run" and len(data["models"][0]["norms"][0]) == 20
    args = ["diagnose", "gates", "--run", str(run), "--steps", "20"]
    assert main([*args, "--png", str(tmp_path / "gates.png")]) == 0
    assert "forget" in capsys.readouterr().out


def test_fresh_models_choose_the_initialisations_each_cell_takes():
    from rnnkit.diagnose.models import fresh_models

    labels = [
        label
        for label, _ in fresh_models(
            ["rnn", "lstm", "lnlstm"], ["default", "irnn"], 3, 4, forget_bias=1.0
        )
    ]
    # irnn only for the plain RNN; lstm with and without the bias; lnlstm with it only
    assert labels == ["rnn", "rnn irnn", "lstm", "lstm fb=1", "lnlstm fb=1"]
    with pytest.raises(ValueError, match="no model fits"):
        fresh_models(["gru"], ["irnn"], 3, 4)


def test_gated_models_keep_lstm_and_gru():
    from rnnkit.diagnose.gates import gated_models
    from rnnkit.diagnose.models import fresh_models

    models = fresh_models(["rnn", "lstm", "gru", "lnlstm"], ["default"], 3, 4)
    assert [label for label, _ in gated_models(models)] == ["lstm", "gru"]
    with pytest.raises(ValueError, match="lstm and gru"):
        gated_models(models[:1])


def test_passage_and_units():
    from rnnkit.diagnose.hidden import Trace, UnitMatch, choose_units, passage

    assert passage("  x\ndef f():\n", 6, at_line=True) == "def f("  # from the first new line
    assert passage("abc", 2) == "ab"
    with pytest.raises(ValueError, match="--offset"):
        passage("", 5)
    trace = Trace("ab", torch.zeros(2, 4), ["h0", "h1", "c0", "c1"])
    found = {"in_quotes": [UnitMatch("in_quotes", 2, "c0", 0.9)]}
    assert choose_units(trace, found) == ([2], {2: "tracks in_quotes (r = +0.90)"})
    assert choose_units(trace, found, "0, 3")[0] == [0, 3]
    with pytest.raises(ValueError, match="out of range"):
        choose_units(trace, found, [4])
    with pytest.raises(ValueError, match="--units"):
        choose_units(trace, found, "first")


def test_unroll_input():
    from rnnkit.diagnose.unroll_print import unroll_input

    torch.testing.assert_close(unroll_input("1,0;0,2", 9, 9), torch.tensor([[1.0, 0], [0, 2]]))
    x = unroll_input(None, 5, 3, seed=1)
    assert x.shape == (5, 3) and torch.equal(x, x.round(decimals=2))
    for bad in ("1,a", "1,0;1"):
        with pytest.raises(ValueError, match="--values"):
            unroll_input(bad, 1, 1)


@pytest.mark.parametrize("flag, value", [("--forget-bias", "1e308"), ("--gain", "nan")])
def test_settings_that_would_overflow_the_weights_are_one_line(tmp_path, capsys, flag, value):
    args = ["diagnose", "gates", "--steps", "5", "--batch-size", "2", "--hidden-size", "4"]
    assert main([*args, flag, value, "--png", str(tmp_path / "g.png")]) == 2
    assert f"{flag} must be finite and within" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()


def test_chrono_fresh_models_fit_the_gated_cells_only():
    from rnnkit.diagnose.models import fresh_models

    models = fresh_models(["rnn", "lstm", "lngru"], ["default", "chrono"], 4, 16, max_dependency=30)
    assert [label for label, _ in models] == ["rnn", "lstm", "lstm chrono", "lngru", "lngru chrono"]
    lstm = dict(models)["lstm chrono"]
    b_f = lstm.bias_ih_l0[16:32].detach()
    torch.testing.assert_close(lstm.bias_ih_l0[:16].detach(), -b_f)
    assert float(b_f.exp().max()) <= 29 + 1e-4
    with pytest.raises(ValueError, match="--max-dependency"):
        fresh_layer("lstm", 4, 16, init="chrono")
