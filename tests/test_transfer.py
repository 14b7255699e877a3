"""Text classification against baselines, with the token level chosen from the data, and transfer
from a language model: TF-IDF baselines in evaluate, ``--tokens auto``, ``--init-from`` (weights
mapped by token), its refusals, and the ULMFiT schedules checked by hand."""

from __future__ import annotations

import csv
import json
import math
import random

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.tasks.classify.baselines import C_GRID
from rnnkit.tasks.classify.run import evaluate_run, predict, train_classify
from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig
from rnnkit.text.tokens import choose_level
from rnnkit.training.config import TrainConfig

pytest.importorskip("sklearn")

GOOD = ["good", "great", "fine", "lovely", "superb"]
BAD = ["bad", "awful", "dull", "poor", "boring"]
FILL = ["the", "film", "was", "a", "plot", "and", "it", "very", "story", "acting"]


def sentiment_csv(path, n=240, seed=0):
    """Short texts whose label is told by one of a few words, among filler words."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for _ in range(n):
            label = rng.choice(["pos", "neg"])
            words = rng.choices(FILL, k=rng.randint(3, 8))
            words.insert(rng.randint(0, len(words)), rng.choice(GOOD if label == "pos" else BAD))
            w.writerow([" ".join(words), label])
    return path


def tiny_train(out, steps=30, **kw) -> TrainConfig:
    return TrainConfig(
        out=str(out), max_steps=steps, batch_size=16, eval_every=steps, seed=0, progress=False, **kw
    )


# -- baselines in evaluate ------------------------------------------------------------------------
def test_evaluate_puts_tfidf_baselines_beside_the_model(tmp_path, capsys):
    data = sentiment_csv(tmp_path / "s.csv")
    model = ClassifyModelConfig(hidden_size=8, embedding_size=8)
    train_classify(
        model, ClassifyDataConfig(data=str(data), tokens="word"), tiny_train(tmp_path / "r")
    )
    m = evaluate_run(tmp_path / "r", plot=None)
    assert set(m["baselines"]) == {"tfidf_word", "tfidf_char"}
    # the label is one word: a word-level linear model finds it
    assert m["baselines"]["tfidf_word"]["accuracy"] > 0.9
    assert m["baselines"]["tfidf_word"]["C"] in C_GRID
    main(["evaluate", str(tmp_path / "r"), "--plot", "none"])
    out = capsys.readouterr().out
    assert "TF-IDF words" in out and "TF-IDF chars" in out and "majority" in out


# -- --tokens auto --------------------------------------------------------------------------------
def short_strings_csv(path, n=240, seed=0):
    """Made-up single words whose label is told by their ending: every word is new."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for _ in range(n):
            label = rng.choice(["a", "b"])
            stem = "".join(rng.choices("bcdfgklmnprst", k=rng.randint(3, 6)))
            w.writerow([stem + ("ing" if label == "a" else "ow"), label])
    return path


@pytest.mark.parametrize("maker,level", [(sentiment_csv, "word"), (short_strings_csv, "char")])
def test_tokens_auto_picks_prints_and_stores_a_level(tmp_path, capsys, maker, level):
    data = maker(tmp_path / "d.csv")
    train_classify(
        ClassifyModelConfig(hidden_size=8, embedding_size=8),
        ClassifyDataConfig(data=str(data)),  # tokens: auto, the default
        tiny_train(tmp_path / "r", steps=2),
    )
    assert f"--tokens auto: {level}" in capsys.readouterr().out
    stored = json.loads((tmp_path / "r" / "config.json").read_text())["task"]
    assert stored["data"]["tokens"] == level
    assert stored["input"]["vocab"]["level"] == level
    assert stored["tokens_auto"]["level"] == level
    # evaluate and predict rebuild the same level from the run
    assert predict(tmp_path / "r", ["a good film"])[0]["label"] in ("pos", "neg", "a", "b")


def test_choose_level_by_hand():
    train = ["a good film", "a bad film", "good acting"]
    choice = choose_level(train, ["a good plot twist"])  # plot, twist unknown: 2 of 4
    assert (choice.level, choice.unknown, choice.median_words) == ("char", 0.5, 3.0)
    assert choose_level(train, ["a good film"]).level == "word"
    assert choose_level(["ab", "cd ef"], ["ab"]).level == "char"  # median 1.5 words: short


# -- --init-from ----------------------------------------------------------------------------------
LM_FLAGS = ["--cell", "lstm", "--hidden-size", "12", "--num-layers", "2", "--embedding-size", "6"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A tiny character language model trained a few steps on the sentiment texts."""
    tmp = tmp_path_factory.mktemp("lm")
    data = sentiment_csv(tmp / "s.csv", n=400, seed=1)
    (tmp / "texts.txt").write_text("\n".join(r.split(",")[0] for r in data.read_text().split()))
    args = ["train", "lm", "--data", str(tmp / "texts.txt"), "--out", str(tmp / "lm")]
    args += [*LM_FLAGS, "--max-steps", "5", "--batch-size", "4", "--bptt", "16"]
    assert main([*args, "--no-progress"]) == 0
    return tmp / "lm"


def test_init_from_copies_the_language_model_mapped_by_token(lm_run, tmp_path):
    from rnnkit.architectures import ManyToOne
    from rnnkit.tasks.base import load_run
    from rnnkit.tasks.classify.transfer import init_from_lm
    from rnnkit.text.tokens import TokenVocab

    lm = load_run(lm_run, kinds=("lm",))
    lm_vocab = lm.extra["vocab"]
    vocab = TokenVocab.build(["good film", "bad film!", "zq\u00e9"], "char")  # z, q, é, ! unseen?
    cfg = ClassifyModelConfig(
        cell="lstm", hidden_size=12, num_layers=2, embedding_size=6, bidirectional=False
    )
    clf = ManyToOne(
        2, vocab_size=len(vocab), embedding_size=6, cell="lstm", hidden_size=12, num_layers=2
    )
    copied = init_from_lm(clf, cfg, vocab, str(lm_run))
    for name, tensor in lm.model.rnn.state_dict().items():
        torch.testing.assert_close(clf.rnn.state_dict()[name], tensor, rtol=0, atol=0)
    source, target = lm.model.embedding.weight, clf.embedding.weight
    mean, new = source.mean(0), 0
    for i, token in enumerate(vocab.tokens):
        if token == "<pad>":
            expected = torch.zeros_like(mean)
        elif token == "<unk>":
            expected = source[lm_vocab.lookup([lm_vocab.UNKNOWN])[0]]
        elif token in lm_vocab and token not in ("<bos>", "<eos>"):
            expected = source[lm_vocab.lookup([token])[0]]
        else:
            expected, new = mean, new + 1
        torch.testing.assert_close(target[i], expected, rtol=0, atol=0)
    assert copied["new"] == new >= 3  # <bos>, <eos>, and é at least (not in the texts)


def test_init_from_refuses_another_network_in_one_line(lm_run, tmp_path, capsys):
    data = sentiment_csv(tmp_path / "s.csv")
    code = main(
        [
            "train",
            "classify",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "c"),
            "--init-from",
            str(lm_run),
            "--max-steps",
            "2",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert "--init-from" in err and "--cell lstm --hidden-size 12" in err and "bidirectional" in err
    assert not (tmp_path / "c").exists()  # refused before anything was written
    args = f"train classify --data {data} --out {tmp_path / 'w'} --init-from {lm_run} --tokens word"
    code = main([*args.split(), *LM_FLAGS, "--no-bidirectional", "--max-steps", "2"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "--tokens char" in err


def test_init_from_trains_with_frozen_lower_layers(lm_run, tmp_path, capsys):
    """With gradual unfreezing slower than the run, only the head moves: the copied layers
    come out exactly as the language model had them."""
    data = sentiment_csv(tmp_path / "s.csv")
    out = tmp_path / "c"
    args = f"train classify --data {data} --out {out} --init-from {lm_run} --no-bidirectional"
    args += " --unfreeze-every 1000 --schedule slanted --lr-decay 2.6 --max-steps 6"
    args += " --eval-every 3 --batch-size 8 --no-progress"
    assert main([*args.split(), *LM_FLAGS]) == 0
    printed = capsys.readouterr().out
    assert "--tokens auto: char" in printed and "tokens mapped" in printed
    from rnnkit.tasks.base import load_run

    lm, clf = load_run(lm_run), load_run(out, "last")
    for name, tensor in lm.model.rnn.state_dict().items():
        torch.testing.assert_close(clf.model.rnn.state_dict()[name], tensor, rtol=0, atol=0)
    stored = json.loads((out / "config.json").read_text())["task"]
    assert stored["transfer"]["unfreeze_every"] == 1000
    # the same run resumed goes on without reading the language model again
    assert main(f"train classify --resume --out {out} --max-steps 8 --no-progress".split()) == 0
    assert "tokens mapped" not in capsys.readouterr().out


# -- schedules, by hand ---------------------------------------------------------------------------
def test_slanted_triangular_matches_ulmfit_equation_3():
    from rnnkit.training.schedules import slanted_triangular

    total, cut_frac, ratio = 1000, 0.1, 32
    cut = math.floor(total * cut_frac)
    for t in (0, 1, 50, 99, 100, 101, 400, 999, 1000):
        p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
        expected = (1 + p * (ratio - 1)) / ratio  # times eta_max
        assert slanted_triangular(t / total, cut_frac, ratio) == pytest.approx(expected)
    assert slanted_triangular(0.1) == 1 and slanted_triangular(0) == slanted_triangular(1) == 1 / 32


def test_discriminative_rates_and_gradual_unfreezing():
    from rnnkit.architectures import ManyToOne
    from rnnkit.training.schedules import discriminative_scales, layer_groups, trainable_from

    assert discriminative_scales(3, 2.6) == pytest.approx([1 / 2.6**2, 1 / 2.6, 1])
    assert [trainable_from(s, 4, 10) for s in (0, 9, 10, 25, 30, 99)] == [3, 3, 2, 1, 0, 0]
    assert trainable_from(0, 4, 0) == 0
    model = ManyToOne(
        2,
        vocab_size=9,
        embedding_size=3,
        hidden_size=4,
        num_layers=2,
        bidirectional=True,
        pooling="attention",
    )
    groups = layer_groups(model)
    assert len(groups) == 4  # embedding, layer 0 (both directions), layer 1, attention + head
    assert groups[0] == [model.embedding.weight]
    assert {id(p) for p in groups[1]} == {
        id(p) for n, p in model.rnn.named_parameters() if "_l0" in n
    }
    assert sum(len(g) for g in groups) == len(list(model.parameters()))


# -- the language model's text from a labelled file -----------------------------------------------
def test_lm_reads_the_training_texts_of_a_labelled_file_and_extra_text(tmp_path):
    from rnnkit.datasets.classification_sets import split_indices
    from rnnkit.datasets.labelled import Columns, load_labelled
    from rnnkit.tasks.lm.run import corpus_of
    from rnnkit.tasks.lm.run import evaluate_run as lm_evaluate
    from rnnkit.tasks.lm.task import LMDataConfig

    data = sentiment_csv(tmp_path / "s.csv")
    (tmp_path / "more.txt").write_text("an unlabelled story about ducks\n")
    cfg = LMDataConfig(data=str(data), text_col="text", extra_data=str(tmp_path / "more.txt"))
    text, extra = corpus_of(cfg)
    rows = load_labelled(str(data), Columns()).inputs
    cut = split_indices(len(rows), (0.8, 0.1, 0.1), 0)
    assert text.splitlines() == [rows[i] for i in sorted(cut["train"])]  # as classify cuts it
    assert "label" not in text and "pos" not in text.split()
    assert extra.startswith("an unlabelled story")
    out = tmp_path / "lm"
    args = f"train lm --data {data} --text-col text --extra-data {tmp_path / 'more.txt'}"
    args += f" --out {out} --max-steps 2 --batch-size 2 --bptt 8 --hidden-size 8 --no-progress"
    assert main(args.split()) == 0
    stored = json.loads((out / "config.json").read_text())["task"]
    assert "k" in stored["vocab"]["symbols"]  # from "ducks": the extra text is in the vocabulary
    assert lm_evaluate(out)["tokens"] > 0  # evaluate rebuilds the same corpus


# -- AWD regularisation ---------------------------------------------------------------------------
def test_embedding_dropout_drops_whole_rows_in_training_only():
    from rnnkit.architectures import ManyToOne
    from rnnkit.tasks.regularization import Regularizer

    torch.manual_seed(0)
    model = ManyToOne(2, vocab_size=50, embedding_size=4, hidden_size=3)
    Regularizer(embedding_dropout=0.5).attach(model)
    ids = torch.randint(1, 50, (8, 30))
    out = model.embedding(ids)
    plain = torch.nn.functional.embedding(ids, model.embedding.weight)
    dropped = (out == 0).all(-1)  # (B, T)
    for token in ids.unique():  # a token is dropped everywhere in the batch, or nowhere
        where = dropped[ids == token]
        assert where.all() or not where.any()
    torch.testing.assert_close(out[~dropped], plain[~dropped] * 2)  # kept rows: 1 / (1 - p)
    assert 0 < dropped.float().mean() < 1
    model.eval()
    torch.testing.assert_close(model.embedding(ids), plain)


def test_ar_and_tar_by_hand():
    from rnnkit.tasks.regularization import Regularizer

    y = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [9.0, 9.0]], [[0.0, 1.0], [5.0, 5.0], [7.0, 7.0]]])
    lengths = torch.tensor([2, 1])  # valid: row 0 steps 0-1, row 1 step 0
    reg = Regularizer(ar=2.0, tar=1.0)
    reg._outputs = y
    ar = (1 + 4 + 9 + 0 + 0 + 1) / (3 * 2)  # mean square over the 3 valid steps, 2 units
    tar = ((3 - 1) ** 2 + (0 - 2) ** 2) / (1 * 2)  # one valid pair, 2 units
    assert float(reg.penalty(lengths)) == pytest.approx(2 * ar + tar)
    assert reg.penalty(lengths) == 0.0  # read once: nothing kept from an old forward


def test_classify_and_lm_train_with_awd_regularisation(tmp_path):
    data = sentiment_csv(tmp_path / "s.csv")
    flags = "--embedding-dropout 0.1 --ar 2 --tar 1 --max-steps 3 --batch-size 8 --no-progress"
    assert main(f"train classify --data {data} --out {tmp_path / 'c'} {flags}".split()) == 0
    (tmp_path / "t.txt").write_text(data.read_text())
    lm = f"train lm --data {tmp_path / 't.txt'} --out {tmp_path / 'l'} --bptt 8 --hidden-size 8"
    assert main(f"{lm} {flags}".split()) == 0
    stored = json.loads((tmp_path / "l" / "config.json").read_text())["task"]["model"]
    assert (stored["embedding_dropout"], stored["ar"], stored["tar"]) == (0.1, 2, 1)


def test_token_regularisers_are_one_set_of_fields_listed_after_the_network(capsys):
    import dataclasses

    from rnnkit.tasks.lm.task import LMModelConfig
    from rnnkit.tasks.network_config import LayerOptions
    from rnnkit.tasks.regularization import TokenRegularisers

    names = [f.name for f in dataclasses.fields(TokenRegularisers)]
    assert names == ["embedding_dropout", "ar", "tar"]
    for cls in (LMModelConfig, ClassifyModelConfig):
        assert issubclass(cls, TokenRegularisers) and issubclass(cls, LayerOptions)
        assert not set(names) & set(vars(cls).get("__annotations__", {}))  # not repeated
        with pytest.raises(ValueError, match="--tar must be >= 0"):
            cls(tar=-1.0)
    for task in ("lm", "classify"):
        with pytest.raises(SystemExit):
            main(["train", task, "--help"])
        text = capsys.readouterr().out
        order = [text.index(f"  --{f} ") for f in ("cell", "recurrent-dropout", "ar", "tar")]
        assert order == sorted(order), task  # the network first, then what regularises it


@pytest.mark.parametrize("clf_flags", [[], ["--weight-drop", "0.5"]])
def test_init_from_a_weight_dropped_language_model(tmp_path, capsys, clf_flags):
    """An AWD-style language model (--weight-drop) starts a classifier with or without weight
    drop of its own: the stored W_hh (not a dropped draw) is what the classifier gets."""
    from rnnkit.tasks.base import load_run

    data = sentiment_csv(tmp_path / "s.csv", n=200, seed=2)
    (tmp_path / "t.txt").write_text("\n".join(r.split(",")[0] for r in data.read_text().split()))
    lm_out, out = tmp_path / "lm", tmp_path / "c"
    args = ["train", "lm", "--data", str(tmp_path / "t.txt"), "--out", str(lm_out), *LM_FLAGS]
    args += ["--weight-drop", "0.5", "--max-steps", "3", "--batch-size", "4", "--bptt", "16"]
    assert main([*args, "--no-progress"]) == 0
    args = f"train classify --data {data} --out {out} --init-from {lm_out} --no-bidirectional"
    args += " --unfreeze-every 1000 --max-steps 2 --batch-size 8 --no-progress"
    assert main([*args.split(), *LM_FLAGS, *clf_flags]) == 0
    lm, clf = load_run(lm_out), load_run(out, "last")
    lm_state, clf_state = lm.model.rnn.state_dict(), clf.model.rnn.state_dict()
    assert set(clf_state) == set(lm_state)  # torch's names, with or without weight drop
    for name, tensor in lm_state.items():
        torch.testing.assert_close(clf_state[name], tensor, rtol=0, atol=0)
    capsys.readouterr()
    assert main(["predict", str(out), "a good film", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"] == "a good film"


@pytest.mark.parametrize(
    "options", [{}, {"weight_drop": 0.3}, {"zoneout": 0.1}, {"recurrent_dropout": 0.2}]
)
@pytest.mark.parametrize("cell", ["lstm", "lngru"])
def test_layer_groups_are_layers_in_either_layout(cell, options):
    from rnnkit.architectures import ManyToOne
    from rnnkit.training.schedules import layer_groups

    model = ManyToOne(2, vocab_size=9, embedding_size=4, cell=cell, hidden_size=5,
                      num_layers=3, bidirectional=True, layer_options=options)  # fmt: skip
    groups = layer_groups(model)
    assert len(groups) == 5  # embedding, three layers, head
    per_layer = {len(g) for g in groups[1:4]}
    assert len(per_layer) == 1 and per_layer.pop() * 3 == len(list(model.rnn.parameters()))


@pytest.mark.parametrize("flags", [["--zoneout", "0.1"], ["--recurrent-dropout", "0.2"]])
def test_init_from_a_fused_language_model_into_an_unrolled_classifier(
    lm_run, tmp_path, capsys, flags
):
    """A plain LSTM language model (torch's layout) starts a classifier whose regularisers
    unroll its layers (cells.K.cell.*): the same weights, matched by layer and name."""
    from rnnkit.layers.build import layer_parameters
    from rnnkit.tasks.base import load_run

    data = sentiment_csv(tmp_path / "s.csv")
    out = tmp_path / "c"
    args = f"train classify --data {data} --out {out} --init-from {lm_run} --no-bidirectional"
    args += " --unfreeze-every 1000 --max-steps 2 --batch-size 8 --no-progress"
    assert main([*args.split(), *LM_FLAGS, *flags]) == 0
    lm = layer_parameters(load_run(lm_run).model.rnn)
    clf = layer_parameters(load_run(out, "last").model.rnn)
    assert set(clf) == set(lm) and len(lm) == 8
    for key, p in lm.items():
        torch.testing.assert_close(clf[key], p, rtol=0, atol=0)
