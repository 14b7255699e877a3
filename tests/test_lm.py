"""The language-model job end to end, in a temporary folder, on a small real corpus."""

from __future__ import annotations

import json
import math
import sysconfig
from pathlib import Path

import pytest
import torch

from rnnkit.architectures import ManyToMany
from rnnkit.cli.main import main
from rnnkit.datasets import CorpusError
from rnnkit.tasks.lm.run import evaluate_run, load_model, train_lm
from rnnkit.tasks.lm.task import LanguageModelTask, LMDataConfig, LMModelConfig
from rnnkit.text.streams import StreamBatcher
from rnnkit.text.unigram import unigram_cross_entropy, unigram_entropy
from rnnkit.text.vocab import Vocab
from rnnkit.training import CheckpointError, TrainConfig


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 120 kB of real text: two modules of the running Python's standard library."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = (stdlib / "argparse.py").read_text() + (stdlib / "textwrap.py").read_text()
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(text)
    return path


def small(out: Path, **train) -> tuple[LMModelConfig, LMDataConfig, TrainConfig]:
    defaults = dict(
        out=str(out),
        max_steps=300,
        batch_size=16,
        lr=1e-2,
        warmup_steps=20,
        eval_every=100,
        checkpoint_every=100,
        log_every=1,
        progress=False,
    )
    defaults.update(train)
    return (
        LMModelConfig(hidden_size=64, num_layers=2, embedding_size=32),
        LMDataConfig(data=str(corpus_path(out)), bptt=32),
        TrainConfig(**defaults),
    )


def corpus_path(out: Path) -> Path:
    return out.parent / "corpus.txt"


@pytest.fixture()
def run_root(tmp_path, corpus) -> Path:
    (tmp_path / "corpus.txt").write_text(corpus.read_text())
    return tmp_path


def train_losses(run_dir: Path) -> list[tuple[int, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if "loss" in r]


def test_training_learns_well_below_the_unigram_entropy(run_root):
    result = train_lm(*small(run_root / "run"))
    metrics = evaluate_run(run_root / "run", split="val")
    assert metrics["loss"] < metrics["unigram_loss"] - 0.7, metrics
    assert result.counters.best_val == pytest.approx(metrics["loss"], rel=1e-6)
    test = evaluate_run(run_root / "run", split="test")
    assert test["loss"] < test["unigram_loss"] - 0.5
    for name in ("config.json", "checkpoint.safetensors", "best.safetensors", "loss.png"):
        assert (run_root / "run" / name).exists(), name


def test_resume_equals_an_uninterrupted_run(run_root):
    full = run_root / "full"
    train_lm(*small(full, max_steps=120))
    killed = run_root / "killed"

    def kill_at_step_70(trainer, record):
        if record["step"] == 70:
            raise KeyboardInterrupt

    m, d, t = small(killed, max_steps=120)
    result = train_lm(m, d, t, callbacks=(kill_at_step_70,))
    assert result.interrupted and result.counters.step == 70
    m, d, t = small(killed, max_steps=120, resume=True)
    train_lm(None, None, t)
    assert train_losses(killed) == train_losses(full)
    a = load_model(full, "last")[0].state_dict()
    b = load_model(killed, "last")[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_samples_the_same_text(run_root, capsys):
    run = run_root / "run"
    train_lm(*small(run, max_steps=60))
    outputs = []
    for seed in (3, 3, 4):
        assert (
            main(["sample", str(run), "--prime", "def ", "--length", "120", "--seed", str(seed)])
            == 0
        )
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]
    assert outputs[0].startswith("def ") and len(outputs[0]) == len("def ") + 120 + 1


def test_cli_train_evaluate_plot_and_errors(run_root, capsys):
    run = run_root / "cli"
    args = [
        "train",
        "lm",
        "--data",
        str(run_root / "corpus.txt"),
        "--out",
        str(run),
        "--max-steps",
        "40",
        "--hidden-size",
        "32",
        "--num-layers",
        "1",
        "--bptt",
        "16",
        "--batch-size",
        "8",
        "--eval-every",
        "20",
        "--no-progress",
    ]
    assert main(args) == 0
    assert main(args) == 2  # the run folder is taken: nothing is overwritten
    assert "already holds a run" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"loss", "bpc", "unigram_loss", "tokens"} <= set(metrics)
    assert main(["plot", str(run), "--png", str(run_root / "curve.png")]) == 0
    assert (run_root / "curve.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        main(["train", "lm", "--data", "x", "--out", str(run_root / "y"), "--bptt", "0"])
    assert "--bptt must be >= 1, got 0" in capsys.readouterr().err


def test_bad_inputs_give_clear_errors(run_root, capsys):
    run = run_root / "run"
    train_lm(*small(run, max_steps=20))
    ckpt = run / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated by a crash or a bad copy
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(run, "last")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        train_lm(None, None, small(run, resume=True)[2])
    (run_root / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="empty"):
        train_lm(
            *small(run_root / "e")[:1],
            LMDataConfig(data=str(run_root / "empty.txt")),
            small(run_root / "e")[2],
        )
    (run_root / "blob.bin").write_bytes(bytes(range(256)) * 50)
    with pytest.raises(CorpusError, match=r"blob\.bin"):
        train_lm(
            LMModelConfig(), LMDataConfig(data=str(run_root / "blob.bin")), small(run_root / "b")[2]
        )
    with pytest.raises(
        CorpusError, match="'no-such-set' is not a file, a folder, a glob or a data"
    ):
        train_lm(LMModelConfig(), LMDataConfig(data="no-such-set"), small(run_root / "n")[2])
    (run_root / "tiny.txt").write_text("just a few words")
    with pytest.raises(ValueError, match="too few for one batch"):
        train_lm(
            LMModelConfig(), LMDataConfig(data=str(run_root / "tiny.txt")), small(run_root / "t")[2]
        )
    assert main(["sample", str(run_root / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["char", "byte"])
def test_vocab_round_trip(kind):
    text = "To be, or not to be — that is the question: 生存"
    vocab = Vocab.build(text, kind)
    assert vocab.decode(vocab.encode(text)) == text
    again = Vocab.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.decode(vocab.encode(text)) == text
    if kind == "char":
        assert vocab.decode(vocab.encode("unseen: Ω")) == "unseen: " + "\ufffd"


def test_stream_windows_continue_each_other():
    ids = torch.arange(1000)
    b = StreamBatcher(ids, batch_size=4, bptt=10)
    w0, w1 = b.window(0), b.window(1)
    assert w0.starts_pass and not w1.starts_pass
    assert torch.equal(w1.x[:, 0], w0.x[:, -1] + 1)  # each row reads on where it stopped
    assert torch.equal(w0.y, w0.x + 1)
    assert b.window(len(b)).starts_pass
    assert unigram_entropy(torch.tensor([0, 1, 0, 1]), 2) == pytest.approx(0.6931, abs=1e-4)
    # training counts [2, 1] + 1 -> p = [0.6, 0.4]; held-out [1, 1, 0] costs -(2 ln .4 + ln .6)/3
    held_out = unigram_cross_entropy(torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0]), 2)
    assert held_out == pytest.approx(-(2 * math.log(0.4) + math.log(0.6)) / 3)


def test_early_stopping_ends_a_run_that_no_longer_improves(run_root, monkeypatch):
    # a validation loss that never improves after the first evaluation
    monkeypatch.setattr(
        LanguageModelTask, "evaluate", lambda self, model, split, n=None: {"loss": 1.0}
    )
    m, d, t = small(run_root / "flat", max_steps=1000, eval_every=10, patience=2)
    result = train_lm(m, d, t)
    assert result.counters.stopped_early
    assert result.counters.step == 30  # evals at 10 (best), 20 and 30 (no gain twice)
    assert (run_root / "flat" / "checkpoint.safetensors").exists()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux /proc")
def test_sampling_memory_stays_flat_over_100k_tokens():
    from rnnkit.decoding import sample_text

    torch.manual_seed(0)
    vocab = Vocab.build("abcdefghij \n")
    model = ManyToMany(len(vocab), vocab_size=len(vocab), embedding_size=8, hidden_size=32)
    sample_text(model, vocab, length=10_000, write=lambda s: None)
    before = _rss_mb()
    text = sample_text(model, vocab, length=100_000, write=lambda s: None)
    assert len(text) == 100_000
    assert _rss_mb() - before < 20  # a graph kept per token would cost hundreds of MB
