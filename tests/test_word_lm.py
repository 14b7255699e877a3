"""A word-level language model (``rnnkit train lm --tokenizer word``): its vocabulary counted on
the training part and stored in the run, unknown words, sample/evaluate/resume/rnnkit.load, and
``--init-from`` into a ``--tokens word`` classifier, copied word by word."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest
import torch

import rnnkit
from rnnkit.cli.main import main
from rnnkit.datasets.splits import split_positions
from rnnkit.tasks.lm.run import evaluate_run, load_run_text, train_lm
from rnnkit.text.tokens import tokenize
from rnnkit.text.words import WordVocab, vocab_from_json
from rnnkit.training.config import TrainConfig

WORDS = ["the", "film", "was", "good", "bad", "plot", "and", "it", "very", "story", ",", "."]
NET = ["--cell", "lstm", "--hidden-size", "12", "--num-layers", "1", "--embedding-size", "6"]
COMMON = ["--batch-size", "4", "--bptt", "8", "--no-progress", "--device", "cpu"]


def corpus(path, n=300, seed=0):
    """Lines of common words, a few capitalised, and a few words seen once (below --min-count)."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(4, 9))) for _ in range(n)]
    lines[3] = "The Film was rare1 good."
    lines[40] = "a rare2 plot, it was"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wordlm")
    data = corpus(tmp / "t.txt")
    run = tmp / "lm"
    args = ["train", "lm", "--data", str(data), "--out", str(run), "--tokenizer", "word"]
    assert main([*args, *NET, *COMMON, "--max-steps", "6", "--eval-every", "6"]) == 0
    return run


def test_vocabulary_is_the_training_part_words_seen_twice(word_run):
    stored = json.loads((word_run / "config.json").read_text())["task"]
    assert stored["data"]["tokenizer"] == "word" and stored["data"]["min_count"] == 2
    words = tokenize((word_run.parent / "t.txt").read_text(), "word")
    train = split_positions(len(words), 0.05, 0.05)["train"]
    counts = Counter(words[train.start : train.stop])
    kept = {w for w, n in counts.items() if n >= 2}
    assert stored["vocab"]["kind"] == "word" and stored["vocab"]["symbols"][0] == "<unk>"
    assert set(stored["vocab"]["symbols"][1:]) == kept
    assert "rare1" not in kept and "the" in kept and "film" in kept  # lower-cased, "The Film"
    ranks = [counts[w] for w in stored["vocab"]["symbols"][1:]]
    assert ranks == sorted(ranks, reverse=True)  # most frequent first
    # rebuilt as it was, and the corpus it reads again is the one it trained on
    model, vocab, val = load_run_text(word_run, split="val")
    assert isinstance(vocab, WordVocab) and vocab.symbols == stored["vocab"]["symbols"]
    assert model.embedding.weight.shape[0] == len(vocab)
    val_words = words[split_positions(len(words), 0.05, 0.05)["val"].start :][: val.numel()]
    assert val.tolist() == vocab.lookup(val_words)


def test_unknown_words_read_as_unk():
    v = WordVocab.from_words(["a", "b", "a", "b", "c"], min_count=2)
    assert v.symbols == ["<unk>", "a", "b"]
    assert v.encode("A, b zz").tolist() == [1, 0, 2, 0]  # ',' and 'zz' are unknown
    assert v.decode([1, 0, 2]) == "a <unk> b"
    assert vocab_from_json(v.to_json()) == v
    with pytest.raises(ValueError, match="--min-count"):
        WordVocab.from_words(["a"], min_count=0)


def test_evaluate_scores_words_against_a_word_unigram(word_run, capsys):
    m = evaluate_run(word_run, split="test")
    words = tokenize((word_run.parent / "t.txt").read_text(), "word")
    parts = split_positions(len(words), 0.05, 0.05)
    vocab = vocab_from_json(json.loads((word_run / "config.json").read_text())["task"]["vocab"])
    mapped = [vocab.symbols[i] for i in vocab.lookup(words)]  # unknown words as <unk>
    train, test = mapped[parts["train"].start : parts["train"].stop], mapped[parts["test"].start :]
    counts = Counter(train)
    total = len(train) + len(vocab)  # add-one smoothed over the word vocabulary
    want = -sum(math.log((counts[w] + 1) / total) for w in test) / len(test)
    assert m["unigram_loss"] == pytest.approx(want, rel=1e-9)
    assert 0 < m["tokens"] < len(test)  # words scored (whole batch streams), not characters
    assert math.isfinite(m["loss"]) and m["loss"] > 0
    assert main(["evaluate", str(word_run)]) == 0
    assert "unigram baseline" in capsys.readouterr().out


def test_sample_joins_words_with_spaces_and_matches_rnnkit_load(word_run, capsys):
    vocab = rnnkit.load(word_run).vocab
    capsys.readouterr()
    assert main(["sample", str(word_run), "--prime", "The film", "--length", "12"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("The film ") and out.endswith("\n")
    generated = out[len("The film ") :].rstrip("\n").split(" ")
    assert len(generated) == 12 and all(w in vocab for w in generated)
    # no prime: starts after <unk>, no leading space
    assert main(["sample", str(word_run), "--length", "5", "--argmax"]) == 0
    bare = capsys.readouterr().out
    assert not bare.startswith(" ") and len(bare.split()) == 5
    lm = rnnkit.load(word_run)
    assert main(["sample", str(word_run), "--prime", "it was", "--argmax", "--length", "9"]) == 0
    assert (
        "it was" + lm.sample(prime="it was", length=9, argmax=True) + "\n"
        == capsys.readouterr().out
    )
    assert lm.sample(length=5, argmax=True) + "\n" == bare


def test_sample_prime_with_unknown_words(word_run, capsys):
    assert main(["sample", str(word_run), "--prime", "the zebra", "--length", "3"]) == 0
    captured = capsys.readouterr()
    assert "1 word of --prime" in captured.err and "'zebra'" in captured.err
    assert captured.out.startswith("the zebra ")
    assert main(["sample", str(word_run), "--prime", "zebra quagga", "--length", "3"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no word of --prime" in err


def test_resume_keeps_the_stored_vocabulary(tmp_path):
    data = corpus(tmp_path / "t.txt", seed=1)
    run = tmp_path / "lm"
    args = ["train", "lm", "--data", str(data), "--out", str(run), "--tokenizer", "word"]
    assert main([*args, "--min-count", "3", *NET, *COMMON, "--max-steps", "3"]) == 0
    before = json.loads((run / "config.json").read_text())["task"]["vocab"]
    train_lm(
        None,
        None,
        TrainConfig(out=str(run), resume=True, max_steps=6, batch_size=4, progress=False),
    )
    after = json.loads((run / "config.json").read_text())
    assert after["task"]["vocab"] == before and after["task"]["data"]["min_count"] == 3
    assert rnnkit.load(run).vocab.symbols == before["symbols"]


# -- --init-from ----------------------------------------------------------------------------------
def labelled_csv(path, n=120, seed=2):
    rng = random.Random(seed)
    rows = ["text,label"]
    for _ in range(n):
        words = [*rng.choices(WORDS[:10], k=rng.randint(3, 7)), rng.choice(["zesty", "meh"])]
        rows.append(f"{' '.join(words)},{'pos' if 'good' in words else 'neg'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_init_from_a_word_lm_copies_rows_word_by_word(word_run, tmp_path, capsys):
    from rnnkit.architectures import ManyToOne
    from rnnkit.tasks.base import load_run
    from rnnkit.tasks.classify.task import ClassifyModelConfig
    from rnnkit.tasks.classify.transfer import init_from_lm
    from rnnkit.text.tokens import TokenVocab

    data = labelled_csv(tmp_path / "r.csv")
    texts = [row.rsplit(",", 1)[0] for row in data.read_text().splitlines()[1:]]
    vocab = TokenVocab.build(texts, "word")
    cfg = ClassifyModelConfig(
        cell="lstm", hidden_size=12, num_layers=1, embedding_size=6, bidirectional=False
    )
    clf = ManyToOne(2, vocab_size=len(vocab), embedding_size=6, hidden_size=12, num_layers=1)
    copied = init_from_lm(clf, cfg, vocab, str(word_run))
    lm = load_run(word_run, kinds=("lm",))
    lm_vocab = lm.extra["vocab"]
    source, target = lm.model.embedding.weight, clf.embedding.weight
    shared = [t for t in vocab.tokens if t in lm_vocab and t != "<unk>"]
    assert "film" in shared and "zesty" not in lm_vocab
    for token in shared:
        row = source[lm_vocab.lookup([token])[0]]
        torch.testing.assert_close(target[vocab.lookup([token])[0]], row, rtol=0, atol=0)
    torch.testing.assert_close(target[vocab.unk_id], source[0], rtol=0, atol=0)  # <unk>
    mean = source.mean(0)
    for token in ("zesty", "meh", "<bos>", "<eos>"):
        torch.testing.assert_close(target[vocab.lookup([token])[0]], mean, rtol=0, atol=0)
    assert copied == {"known": len(shared) + 1, "new": len(vocab) - len(shared) - 2}
    for name, tensor in lm.model.rnn.state_dict().items():
        torch.testing.assert_close(clf.rnn.state_dict()[name], tensor, rtol=0, atol=0)
    # the command line: --tokens auto takes the language model's level, words
    out = tmp_path / "clf"
    args = ["train", "classify", "--data", str(data), "--out", str(out), "--init-from"]
    args += [str(word_run), *NET, "--no-bidirectional", "--max-steps", "2", "--no-progress"]
    assert main(args) == 0
    assert "--tokens auto: word" in capsys.readouterr().out
    stored = json.loads((out / "config.json").read_text())["task"]
    assert stored["input"]["vocab"]["level"] == "word"


def test_init_from_refuses_a_level_mismatch_in_one_line(word_run, tmp_path, capsys):
    data = labelled_csv(tmp_path / "r.csv")
    args = ["train", "classify", "--data", str(data), "--out", str(tmp_path / "c"), "--init-from"]
    args += [str(word_run), *NET, "--no-bidirectional", "--max-steps", "2", "--tokens", "char"]
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reads words" in err and "--tokens word" in err
    assert not (tmp_path / "c").exists()


def test_onnx_example_refuses_a_word_model_in_one_line(word_run, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX tests need rnnkit[onnx]")
    import subprocess
    import sys
    from pathlib import Path

    from rnnkit.export import export_run

    folder = tmp_path / "onnx"
    export_run(word_run, format="onnx", out=str(folder))
    manifest = json.loads((folder / "export.json").read_text())
    vocab = rnnkit.load(word_run).vocab
    assert manifest["vocabulary"] == {"kind": "word", "tokens": vocab.symbols, "unknown": "<unk>"}
    script = Path(__file__).resolve().parents[1] / "examples" / "onnx_sample.py"
    done = subprocess.run(
        [sys.executable, str(script), str(folder)], capture_output=True, text=True
    )
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert "word language model" in done.stderr


def test_a_run_stored_before_min_count_loads_as_before(tmp_path, capsys):
    data = corpus(tmp_path / "t.txt")
    run = tmp_path / "lm"
    args = ["train", "lm", "--data", str(data), "--out", str(run), *NET, *COMMON]
    assert main([*args, "--max-steps", "2"]) == 0
    config = json.loads((run / "config.json").read_text())
    del config["task"]["data"]["min_count"]  # as a run written before --tokenizer word
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["sample", str(run), "--prime", "the", "--length", "20", "--argmax"]) == 0
    out = capsys.readouterr().out
    assert rnnkit.load(run).vocab.kind == "char" and len(out) == len("the") + 20 + 1
    assert evaluate_run(run)["tokens"] > 0
