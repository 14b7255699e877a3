"""A language-model run from start to finish: train, load, evaluate, sample. The CLI's verbs.

Each function is one call a Python user can make too, for example::

    from rnnkit.tasks.lm.run import train_lm, evaluate_run
    train_lm(LMModelConfig(), LMDataConfig(data="shakespeare"), TrainConfig(out="runs/shk"))
    evaluate_run("runs/shk", split="test")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from rnnkit.datasets import load_corpus
from rnnkit.decoding import SamplingConfig, sample_text
from rnnkit.tasks.base import Loaded, load_run
from rnnkit.tasks.lm.task import (
    LanguageModelTask,
    LMDataConfig,
    LMModelConfig,
    build_lm,
    encode_corpus,
    evaluate_lm,
)
from rnnkit.text.unigram import unigram_cross_entropy
from rnnkit.text.vocab import Vocab
from rnnkit.text.words import vocab_from_json
from rnnkit.training import runs
from rnnkit.training.config import TrainConfig
from rnnkit.training.runs import stored_config
from rnnkit.training.trainer import RunResult, Trainer, resolve_device


def train_lm(
    model_cfg: LMModelConfig | None,
    data_cfg: LMDataConfig | None,
    train_cfg: TrainConfig,
    *,
    callbacks=(),
) -> RunResult:
    """Train (or with ``train_cfg.resume``, continue) a language model into ``train_cfg.out``.

    On resume, the model, data and vocabulary come from the run's config.json; the arguments
    given for them are ignored, and the training flags given now apply (a longer budget, say).
    """
    vocab = None
    model_cfg, data_cfg, stored = runs.run_configs(
        train_cfg, "lm", LMModelConfig, LMDataConfig, model_cfg, data_cfg
    )
    if stored is not None:
        vocab = vocab_from_json(stored["vocab"])
    device = resolve_device(train_cfg.device)
    text, extra = corpus_of(data_cfg)
    task = LanguageModelTask(
        model_cfg,
        data_cfg,
        text,
        batch_size=train_cfg.batch_size,
        device=device,
        vocab=vocab,
        extra=extra,
    )
    return Trainer(task, train_cfg, callbacks).run()


def rebuild(task: dict) -> Loaded:
    """A language-model run's (untrained) model and vocabulary, from its stored task."""
    vocab = vocab_from_json(task["vocab"])
    return Loaded(
        build_lm(len(vocab), stored_config(LMModelConfig, task["model"])), {"vocab": vocab}
    )


def load_model(run_dir: str | Path, which: str = "best", device: str = "cpu"):
    """A run's model (``best`` or ``last`` weights), vocabulary and stored task."""
    run = load_run(run_dir, which, device, kinds=("lm",))
    return run.model, run.extra["vocab"], run.task


def _encoded_splits(data_cfg: LMDataConfig, vocab: Vocab) -> dict:
    """The train/val/test token ids of a run's own corpus, cut as in training."""
    text, extra = corpus_of(data_cfg)
    return encode_corpus(text, data_cfg, vocab, extra)[1]


def corpus_of(data_cfg: LMDataConfig) -> tuple[str, str]:
    """The text of ``--data`` (with ``--text-col``: the training texts of a labelled set, one a
    line) and of ``--extra-data`` (empty without it)."""
    extra = load_corpus(data_cfg.extra_data) if data_cfg.extra_data else ""
    if data_cfg.text_col is None:
        return load_corpus(data_cfg.data), extra
    from rnnkit.datasets.classification_sets import split_indices
    from rnnkit.datasets.labelled import Columns, load_labelled

    data = load_labelled(data_cfg.data, Columns(text_col=data_cfg.text_col))
    if data.kind != "text":
        raise ValueError(f"--text-col: {data_cfg.data} holds {data.kind} input, not text")
    train = (data.given_splits or split_indices(len(data), (0.8, 0.1, 0.1), 0))["train"]
    return "\n".join(data.inputs[i] for i in sorted(train)) + "\n", extra


def load_run_text(
    run_dir: str | Path, which: str = "best", split: str = "val", device: str = "cpu"
):
    """A run's model and vocabulary (``load_model``) and the token ids of ``split`` of its own
    corpus: what ``rnnkit.diagnose.lm.LMSubject`` holds."""
    model, vocab, task = load_model(run_dir, which, device)
    splits = _encoded_splits(stored_config(LMDataConfig, task["data"]), vocab)
    if split not in splits:
        raise ValueError(f"--split must be train, val or test, got {split!r}")
    return model, vocab, splits[split]


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | None = None,
    split: str = "test",
    which: str = "best",
    device: str = "cpu",
    batch_size: int | None = None,
) -> dict:
    """Loss and bits per token of a run's model on a split of its corpus, or on other text.

    With ``data``, the whole of that text (a file, folder, glob or data-set name) is scored;
    otherwise ``split`` (train, val or test) of the run's own corpus, cut as in training.
    A unigram baseline (each token predicted with its training frequency, add-one smoothed,
    scored on the same text) is reported
    beside it. Text is scored in ``batch_size`` streams (default: the run's, as in validation).
    """
    model, vocab, task = load_model(run_dir, which, device)
    data_cfg = stored_config(LMDataConfig, task["data"])
    splits = _encoded_splits(data_cfg, vocab)
    if data is not None:
        ids = vocab.encode(load_corpus(data))
        scored = data
    else:
        if split not in splits:
            raise ValueError(f"--split must be train, val or test, got {split!r}")
        ids, scored = splits[split], f"{data_cfg.data} [{split}]"
    batch_size = batch_size or task["batch_size"]
    metrics = evaluate_lm(model, ids, batch_size, data_cfg.bptt, next(model.parameters()).device)
    baseline = unigram_cross_entropy(splits["train"], ids, len(vocab))
    return {
        "data": scored,
        "checkpoint": which,
        **metrics,
        "unigram_loss": baseline,
        "unigram_bpc": baseline / math.log(2),
    }


def sample_run(
    run_dir: str | Path,
    *,
    prime: str = "",
    length: int = 500,
    sampling: SamplingConfig | None = None,
    which: str = "best",
    device: str = "cpu",
    write: Callable[[str], None] | None = None,
) -> str:
    """``length`` tokens sampled after ``prime`` from a run's model (``write`` gets the prime,
    then each piece as it is generated, then a newline)."""
    model, vocab, _ = load_model(run_dir, which, device)
    if write is None:
        return sample_text(model, vocab, prime=prime, length=length, sampling=sampling)
    started = False

    def emit(piece: str) -> None:  # the prime goes out once it is known to be readable
        nonlocal started
        if not started:
            write(prime)
            started = True
        write(piece)

    text = sample_text(model, vocab, prime=prime, length=length, sampling=sampling, write=emit)
    if not started:
        write(prime)
    write("\n")
    return text
