"""Text classification against baselines, with the token level chosen from the data, and transfer
from a language model: TF-IDF baselines in evaluate, ``--tokens auto``, ``--init-from`` (weights
mapped by token), its refusals, and the ULMFiT schedules checked by hand."""

from __future__ import annotations

import csv
import math
import random

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.tasks.classify.run import evaluate_run, train_classify
from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig
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
