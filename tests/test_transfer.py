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
    assert m["baselines"]["tfidf_word"]["C"] in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
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
