"""Export and the inference API: every task's exported graphs against the run's own model
(onnxruntime and TorchScript, whole sequences, other batch and time sizes than the traced
ones), the numpy-only example against ``rnnkit sample --argmax``, and ``rnnkit.load`` against
the CLI's output.

The runs are tiny and trained a few steps; each is built once per module.
"""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli.main import main
from rnnkit.export import export_run
from rnnkit.tasks.base import load_run

ROOT = Path(__file__).resolve().parents[1]
ort = pytest.importorskip("onnxruntime", reason="ONNX tests need rnnkit[onnx]")
TOL = dict(rtol=1e-4, atol=1e-4)
COMMON = ["--max-steps", "4", "--eval-every", "4", "--no-progress", "--device", "cpu"]


# -- tiny runs -----------------------------------------------------------------------------------
def _lm(folder: Path, *flags: str) -> Path:
    data = folder / "text.txt"
    data.write_text("abcabd abcabe eba dcba " * 300)
    run = folder / "run"
    assert main(["train", "lm", "--data", str(data), "--out", str(run), "--hidden-size", "8",
                 "--embedding-size", "4", "--bptt", "8", *COMMON, *flags]) == 0  # fmt: skip
    return run


def _words(n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [
        rng.choices(["good", "bad", "not", "film", "plot"], k=rng.randint(2, 7)) for _ in range(n)
    ]


def _classify(folder: Path, *flags: str) -> Path:
    rows = ["text,label"] + [
        f"{' '.join(w)},{'pos' if 'good' in w else 'neg'}" for w in _words(120)
    ]
    data = folder / "reviews.csv"
    data.write_text("\n".join(rows) + "\n")
    run = folder / "run"
    assert main(["train", "classify", "--data", str(data), "--out", str(run),
                 "--hidden-size", "8", "--embedding-size", "4", *COMMON, *flags]) == 0  # fmt: skip
    return run


def _tag(folder: Path) -> Path:
    data = folder / "tags.jsonl"
    with open(data, "w") as f:
        for w in _words(120):
            tags = ["NEG" if i and w[i - 1] == "not" else "O" for i in range(len(w))]
            f.write(json.dumps({"tokens": w, "tags": tags}) + "\n")
    run = folder / "run"
    assert main(["train", "tag", "--data", str(data), "--text-col", "tokens", "--label-col",
                 "tags", "--out", str(run), "--hidden-size", "8", "--embedding-size", "4",
                 "--no-bidirectional", *COMMON]) == 0  # fmt: skip
    return run


def _forecast(folder: Path, *flags: str) -> Path:
    t = np.arange(120)
    y = 10 + np.sin(2 * np.pi * t / 12) + 0.1 * np.cos(t)
    data = folder / "s.csv"
    data.write_text("t,y\n" + "".join(f"{i},{v:.5f}\n" for i, v in zip(t, y)))
    run = folder / "run"
    assert main(["train", "forecast", "--data", str(data), "--time-col", "t", "--target", "y",
                 "--lookback", "16", "--horizon", "4", "--season", "12", "--hidden-size", "8",
                 "--out", str(run), *COMMON, *flags]) == 0  # fmt: skip
    return run


def _generate(folder: Path, *flags: str) -> Path:
    rng = random.Random(0)
    letters = {"xyz": "xyz", "abc": "abc"}
    rows = [(c, "".join(rng.choice(letters[c]) for _ in range(rng.randint(3, 6))))
            for c in rng.choices(sorted(letters), k=150)]  # fmt: skip
    data = folder / "t.csv"
    data.write_text("kind,word\n" + "".join(f"{c},{w}\n" for c, w in rows))
    run = folder / "run"
    assert main(["train", "generate", "--data", str(data), "--condition-col", "kind",
                 "--target-col", "word", "--hidden-size", "8", "--out", str(run),
                 *COMMON, *flags]) == 0  # fmt: skip
    return run


def _seq2seq(folder: Path, *flags: str) -> Path:
    rng = random.Random(0)
    words = sorted({"".join(rng.choice("abcdefg") for _ in range(rng.randint(2, 6)))
                    for _ in range(150)})  # fmt: skip
    data = folder / "pairs.tsv"
    data.write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    run = folder / "run"
    assert main(["train", "seq2seq", "--data", str(data), "--out", str(run), "--hidden-size",
                 "8", "--embedding-size", "4", *COMMON, *flags]) == 0  # fmt: skip
    return run


BUILD = {
    "lm": _lm,
    "lm_gru": lambda f: _lm(f, "--cell", "gru", "--num-layers", "1"),
    "lm_lnlstm": lambda f: _lm(f, "--cell", "lnlstm", "--num-layers", "1"),
    "lm_byte": lambda f: _lm(f, "--tokenizer", "byte", "--num-layers", "1"),
    "lm_mingru": lambda f: _lm(f, "--cell", "mingru"),
    "lm_minlstm": lambda f: _lm(f, "--cell", "minlstm", "--num-layers", "1"),
    # the regularisers act in training only: the exported graphs are the evaluation model's
    "lm_regularised": lambda f: _lm(
        f, "--weight-drop", "0.3", "--recurrent-dropout", "0.2", "--zoneout", "0.1"
    ),
    "classify_weight_drop": lambda f: _classify(f, "--weight-drop", "0.3", "--cell", "lstm"),
    "classify_lngru": lambda f: _classify(f, "--cell", "lngru", "--no-bidirectional"),
    "classify": _classify,
    "classify_mean": lambda f: _classify(f, "--pooling", "mean", "--cell", "gru"),
    "tag": _tag,
    "forecast": lambda f: _forecast(f, "--quantiles", "0.1,0.5,0.9"),
    "forecast_ar": lambda f: _forecast(f, "--mode", "autoregressive", "--members", "2"),
    "generate": _generate,
    "generate_lnlstm": lambda f: _generate(f, "--cell", "lnlstm"),
    "seq2seq": _seq2seq,
    "seq2seq_lngru": lambda f: _seq2seq(f, "--cell", "lngru", "--no-bidirectional"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = BUILD[name](tmp_path_factory.mktemp(name))
        return made[name]

    return get


def _export(run: Path, fmt: str = "onnx") -> tuple[Path, dict]:
    out = run.parent / f"export-{fmt}"
    if not (out / "export.json").exists():
        assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 0
    return out, json.loads((out / "export.json").read_text())


class Runner:
    """The graphs of an export folder, called by name with numpy or torch inputs."""

    def __init__(self, folder: Path, manifest: dict, fmt: str) -> None:
        self.graphs = {g["name"]: g for g in manifest["graphs"]}
        self.fmt, self.folder = fmt, folder
        self.loaded = {}

    def __call__(self, name: str, *inputs) -> list[np.ndarray]:
        graph = self.graphs[name]
        if name not in self.loaded:
            path = str(self.folder / graph["file"])
            self.loaded[name] = (
                ort.InferenceSession(path, providers=["CPUExecutionProvider"])
                if self.fmt == "onnx"
                else torch.jit.load(path)
            )
        model = self.loaded[name]
        arrays = [np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x) for x in inputs]
        if self.fmt == "onnx":
            names = [i["name"] for i in graph["inputs"]]
            return model.run(None, dict(zip(names, arrays)))
        with torch.no_grad():
            out = model(*[torch.from_numpy(a) for a in arrays])
        return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _close(got, want) -> None:
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else want
    np.testing.assert_allclose(got, want, **TOL)


def _zero_state(graph: dict, batch: int) -> list[np.ndarray]:
    return [
        np.zeros([batch if isinstance(n, str) else n for n in t["shape"]], np.float32)
        for t in graph["inputs"]
        if t["name"] in ("h", "c", "s0", "s1")
    ]


# -- parity: every task's exported graphs against the run's own model ---------------------------
SLOW = pytest.mark.slow
FORMATS = ["onnx", pytest.param("torchscript", marks=SLOW)]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "name",
    [
        "lm",
        pytest.param("lm_gru", marks=SLOW),
        "lm_lnlstm",
        pytest.param("lm_mingru", marks=SLOW),
        pytest.param("lm_minlstm", marks=SLOW),
        "lm_regularised",
    ],
)
def test_language_model_step_and_sequence_match_the_run(runs, name, fmt):
    run = runs(name)
    folder, manifest = _export(run, fmt)
    model = load_run(run).model
    call = Runner(folder, manifest, fmt)
    tokens = torch.randint(0, model.head.out_features, (3, 11))
    with torch.no_grad():
        want, want_state = model(tokens)
    step = call.graphs["step"]
    assert [t["name"] for t in step["inputs"]][:1] == ["tokens"]
    state = _zero_state(step, 3)
    for t in range(tokens.size(1)):  # the step model over the whole sequence
        logits, *state = call("step", tokens[:, t], *state)
        _close(logits, want[:, t])
    for got, ref in zip(state, rnnkit.state.leaves(want_state)):
        _close(got, ref)
    assert not manifest["limitations"]  # custom cells too: a scripted loop, dynamic time
    logits, *final = call("sequence", tokens, *_zero_state(step, 3))
    _close(logits, want)
    for got, ref in zip(final, rnnkit.state.leaves(want_state)):
        _close(got, ref)
    assert manifest["graphs"][1]["inputs"][0]["shape"] == ["batch", "time"]
    assert manifest["vocabulary"]["tokens"] == load_run(run).extra["vocab"].symbols


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "name",
    [
        "classify",
        pytest.param("classify_mean", marks=SLOW),
        "classify_lngru",
        "classify_weight_drop",
        "tag",
    ],
)
def test_classifier_and_tagger_scores_match_the_run_with_lengths(runs, name, fmt):
    run = runs(name)
    folder, manifest = _export(run, fmt)
    loaded = load_run(run)
    model = loaded.model
    vocab = loaded.extra["encoder"].vocab
    lengths = torch.tensor([9, 3, 6, 1])
    x = torch.randint(4, len(vocab), (4, 9)) * (torch.arange(9) < lengths[:, None])
    with torch.no_grad():
        want = model(x, lengths=lengths)
        if isinstance(want, tuple):  # a tagger: (scores, state)
            want = want[0]
    (scores,) = Runner(folder, manifest, fmt)("scores", x, lengths)
    if name == "tag":  # past each length a tagger's scores are the head's bias: compare inside
        mask = (torch.arange(9) < lengths[:, None]).numpy()
        _close(scores[mask], want[torch.from_numpy(mask)])
    else:
        _close(scores, want)
    assert manifest["labels"] == loaded.extra["labels"].classes


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["forecast", pytest.param("forecast_ar", marks=SLOW)])
def test_forecaster_matches_the_run(runs, name, fmt):
    run = runs(name)
    folder, manifest = _export(run, fmt)
    loaded = load_run(run)
    data = loaded.extra["data_cfg"]
    window = torch.randn(5, data.lookback, loaded.task["inputs"])
    with torch.no_grad():
        if data.mode == "direct":
            want = loaded.model(window)[0][:, -1]
        else:
            want = loaded.model.rollout(window, data.horizon)
    (got,) = Runner(folder, manifest, fmt)("forecast", window)
    assert got.shape == (5, data.horizon, max(1, len(data.quantile_list)))
    _close(got, want)
    assert manifest["scalers"] and manifest["quantiles"] == list(data.quantile_list)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["generate", pytest.param("generate_lnlstm", marks=SLOW)])
def test_generator_start_step_and_sequence_match_the_run(runs, name, fmt):
    run = runs(name)
    folder, manifest = _export(run, fmt)
    model = load_run(run).model
    call = Runner(folder, manifest, fmt)
    condition = torch.tensor([0, 1, 1])
    target_in = torch.randint(4, model.head.out_features, (3, 7))
    target_in[:, 0] = model.bos_id
    with torch.no_grad():
        want = model(condition, target_in)
    z, *state = call("start", condition)
    logits, *_ = call("sequence", target_in, z, *state)
    _close(logits, want)
    for t in range(target_in.size(1)):
        logits, *state = call("step", target_in[:, t], z, *state)
        _close(logits, want[:, t])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["seq2seq", pytest.param("seq2seq_lngru", marks=SLOW)])
def test_seq2seq_encoder_and_decoder_step_match_the_run(runs, name, fmt):
    run = runs(name)
    folder, manifest = _export(run, fmt)
    model = load_run(run).model
    call = Runner(folder, manifest, fmt)
    lengths = torch.tensor([8, 3, 5])
    source = torch.randint(4, 10, (3, 8)) * (torch.arange(8) < lengths[:, None])
    target_in = torch.randint(4, model.head.out_features, (3, 6))
    target_in[:, 0] = model.bos_id
    with torch.no_grad():
        want, want_weights = model(source, lengths, target_in)
    values, keys, *state = call("encoder", source, lengths)
    for t in range(target_in.size(1)):
        logits, weights, *state = call("decoder_step", target_in[:, t], values, keys, lengths,
                                       *state)  # fmt: skip
        _close(logits, want[:, t])
        _close(weights, want_weights[:, t])


@pytest.mark.slow
def test_bidirectional_custom_cell_classifier_refuses_with_a_reason(tmp_path, capsys):
    clf = _classify(tmp_path, "--cell", "lnlstm")
    folder = tmp_path
    capsys.readouterr()
    assert main(["export", str(clf), "--out", str(folder / "e")]) == 2
    err = capsys.readouterr().err
    assert "torch's fused kernel" in err and "Traceback" not in err


def test_export_rejects_a_bad_format(runs, capsys):
    with pytest.raises(SystemExit):
        main(["export", str(runs("lm")), "--format", "tflite"])
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--format must be one of onnx, torchscript"):
        export_run(runs("lm"), format="tflite")


def test_export_without_onnx_names_the_extra(runs, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed: import raises
    assert main(["export", str(runs("lm")), "--out", str(runs("lm").parent / "none")]) == 2
    assert "pip install 'rnnkit[onnx]'" in capsys.readouterr().err


# -- the numpy + onnxruntime client ---------------------------------------------------------------
@pytest.mark.parametrize(
    "name,prime",
    [("lm", "ab"), ("lm", ""), ("lm", "dcé"), pytest.param("lm_byte", "dcé", marks=SLOW)],
)
def test_numpy_example_reproduces_rnnkit_sample_argmax(runs, capsys, name, prime):
    run = runs(name)
    folder, _ = _export(run)
    capsys.readouterr()
    assert main(["sample", str(run), "--argmax", "--prime", prime, "--length", "40"]) == 0
    want = capsys.readouterr().out
    script = ROOT / "examples" / "onnx_sample.py"
    got = subprocess.run(
        [sys.executable, str(script), str(folder), "--prime", prime, "--length", "40"],
        capture_output=True, text=True, check=True, encoding="utf-8",
    ).stdout  # fmt: skip
    assert got == want and want.startswith(prime) and len(want) > len(prime) + 1


def test_numpy_example_imports_neither_torch_nor_rnnkit():
    tree = ast.parse((ROOT / "examples" / "onnx_sample.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}  # fmt: skip
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"__future__", "argparse", "codecs", "json", "sys", "pathlib", "numpy",
                        "onnxruntime"}  # fmt: skip


# -- rnnkit.load against the command line ---------------------------------------------------------
@pytest.mark.parametrize("name", ["lm", "lm_lnlstm", "lm_regularised"])
def test_load_language_model_samples_and_streams_as_the_cli(runs, capsys, name):
    run = runs(name)
    capsys.readouterr()
    assert main(["sample", str(run), "--argmax", "--prime", "ab", "--length", "30"]) == 0
    cli = capsys.readouterr().out
    lm = rnnkit.load(run)
    assert "ab" + lm.sample(prime="ab", length=30, argmax=True) + "\n" == cli
    assert main(["sample", str(run), "--seed", "3", "--length", "30"]) == 0
    assert lm.sample(length=30, seed=3) + "\n" == capsys.readouterr().out
    stream, vocab, text = lm.stream(), lm.vocab, []
    logits = [stream.step(ch) for ch in "ab"][-1]
    for _ in range(30):
        token = int(logits.argmax())
        text.append(vocab.symbols[token])
        logits = stream.step(token)
    assert "ab" + "".join(text) + "\n" == cli
    # the stream's numbers are the model's over the whole text
    torch.testing.assert_close(torch.log_softmax(logits, -1), lm.predict("ab" + "".join(text))[-1])


def test_load_generator_samples_and_streams_as_the_cli(runs, capsys):
    run = runs("generate")
    capsys.readouterr()
    assert main(["sample", str(run), "--condition", "xyz", "--num-samples", "3"]) == 0
    cli = capsys.readouterr().out.splitlines()
    gen = rnnkit.load(run)
    assert gen.sample("xyz", 3) == cli
    greedy = gen.predict("abc", max_length=12)
    vocab = gen.loaded.extra["vocab"]
    stream, token, out = gen.stream("abc"), "<bos>", []
    for _ in range(12):
        token = int(stream.step(token).argmax())
        if token == vocab.eos_id:
            break
        out.append(token)
    assert vocab.decode(out) == greedy


def _classifier_predicts_as_the_cli(run: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["predict", str(run), "good film", "not bad plot", "--json", "--top", "2"]) == 0
    cli = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    got = rnnkit.load(run).predict(["good film", "not bad plot"], top=2)
    assert [{"input": c["input"], **g} for c, g in zip(cli, got)] == cli


def test_load_classifier_and_tagger_predict_as_the_cli(runs, capsys):
    _classifier_predicts_as_the_cli(runs("classify"), capsys)
    tag = runs("tag")
    capsys.readouterr()  # its training's output, when no test before built it
    assert main(["predict", str(tag), "not good film", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    tagger = rnnkit.load(tag)
    assert {"input": cli["input"], "tokens": cli["tokens"],
            **tagger.predict([["not", "good", "film"]])[0]} == cli  # fmt: skip
    # streaming a tagger: each step's scores are the whole sequence's at that step
    stream = tagger.stream()
    steps = torch.stack([stream.step(w) for w in ["not", "good", "film"]])
    ids = torch.tensor([tagger.loaded.extra["encoder"].vocab.lookup(["not", "good", "film"])])
    with torch.no_grad():
        torch.testing.assert_close(steps, tagger.model(ids)[0][0])


def test_load_forecaster_predicts_and_streams_as_the_cli(runs, capsys):
    run = runs("forecast")
    capsys.readouterr()
    assert main(["predict", str(run), "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    fc = rnnkit.load(run)
    assert fc.predict() == (cli if isinstance(cli, list) else cli["rows"])
    window = torch.randn(16, 1)
    stream = fc.stream()
    got = [stream.step(row) for row in window.numpy()][-1]
    with torch.no_grad():
        torch.testing.assert_close(got, fc.model(window[None])[0][0, -1])


def test_load_translator_predicts_and_streams_as_the_cli(runs, capsys, tmp_path):
    run = runs("seq2seq")
    capsys.readouterr()
    source = tmp_path / "in.txt"
    source.write_text("abc\ngfed\n")
    assert main(["predict", str(run), "--input", str(source)]) == 0
    cli = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
    tr = rnnkit.load(run)
    assert tr.predict(["abc", "gfed"]) == cli
    vocab = tr.loaded.extra["target_vocab"]
    # greedy decoding by hand; predict stops at 2 * S + 10 tokens (S: the batch's longest)
    stream, token, out = tr.stream("gfed"), "<bos>", []
    for _ in range(2 * 4 + 10):
        token = int(stream.step(token).argmax())
        if token == vocab.eos_id:
            break
        out.append(token)
    assert vocab.decode(out) == cli[1]


def test_load_classifier_streams_the_pooled_scores_of_the_prefix(runs):
    clf = rnnkit.load(runs("classify_lngru"))  # unidirectional, a custom cell, last pooling
    words = ["not", "good", "film", "plot"]
    stream = clf.stream()
    got = [stream.step(w) for w in words]
    ids = torch.tensor([clf.loaded.extra["encoder"].vocab.lookup(words)])
    with torch.no_grad():
        for t in range(len(words)):
            torch.testing.assert_close(got[t], clf.model(ids[:, : t + 1])[0])
    with pytest.raises(ValueError, match="bidirectional model cannot stream"):
        rnnkit.load(runs("classify")).stream()


def test_load_regularised_classifier_predicts_as_the_cli(runs, capsys):
    _classifier_predicts_as_the_cli(runs("classify_weight_drop"), capsys)
