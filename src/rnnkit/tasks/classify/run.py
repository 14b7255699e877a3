"""A classification (or tagging) run from start to finish: train, load, predict, evaluate.

Each function is one call a Python user can make too::

    from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig
    from rnnkit.tasks.classify.run import train_classify, evaluate_run, predict
    train_classify(ClassifyModelConfig(), ClassifyDataConfig(data="reviews.csv"),
                   TrainConfig(out="runs/reviews", max_steps=2000))
    evaluate_run("runs/reviews")                     # the test split, with a confusion PNG
    predict("runs/reviews", ["a joyless, tedious film"])
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from rnnkit.audio import AudioConfig, resolve_f_max, wav_rate
from rnnkit.datasets.classification_sets import split_indices
from rnnkit.datasets.labelled import load_labelled
from rnnkit.datasets.labelled_formats import (
    TAG_SUFFIXES,
    TEXT_SUFFIXES,
    Labelled,
    LabelledDataError,
    audio_files,
    load_arrays,
    read_conll,
    read_ts,
    sequences,
)
from rnnkit.datasets.padding import pad_batch
from rnnkit.datasets.tables import table_rows, table_suffix
from rnnkit.tasks.base import Loaded, load_run
from rnnkit.tasks.classify.inputs import InputEncoder, LabelEncoder
from rnnkit.tasks.classify.metrics import (
    classification_report,
    imbalance,
    majority_baseline,
    plot_confusion,
)
from rnnkit.tasks.classify.task import (
    ClassifyDataConfig,
    ClassifyModelConfig,
    ClassifyTask,
    build_classifier,
    logits_of,
)
from rnnkit.tasks.classify.transfer import TransferConfig, check_init_from, lm_level
from rnnkit.training import runs
from rnnkit.training.config import TrainConfig
from rnnkit.training.runs import stored_config
from rnnkit.training.trainer import RunResult, Trainer, resolve_device

KINDS = ("classify", "tag")
# what `predict` reads as a file (for a text model, anything else is text to classify)
READABLE = (*TEXT_SUFFIXES, ".bz2", ".npz", ".npy", ".ts", ".wav")
# what `predict` reads as a file for a tagger of tokens (anything else is text to tag)
TOKEN_READABLE = (*TEXT_SUFFIXES, *TAG_SUFFIXES, ".bz2", ".txt")


def read_splits(
    data_cfg: ClassifyDataConfig, audio: AudioConfig, aligned: bool
) -> dict[str, Labelled]:
    """Train, validation and test examples: given files, the set's own split, or a fixed cut."""
    data = load_labelled(data_cfg.data, data_cfg.columns, aligned=aligned, audio=audio)
    if data.aligned != aligned:
        raise LabelledDataError(
            f"{data_cfg.data} has {'per-step' if data.aligned else 'one label per sequence'} "
            f"labels; use `rnnkit train {'tag' if data.aligned else 'classify'}`"
        )
    extra = {
        name: load_labelled(path, data_cfg.columns, aligned=aligned, audio=audio)
        for name, path in (("val", data_cfg.val_data), ("test", data_cfg.test_data))
        if path
    }
    cut = data.given_splits or split_indices(len(data), data_cfg.fractions, data_cfg.split_seed)
    if not data.given_splits:  # a split given as a file: its share of --data trains instead
        for name in extra:
            cut["train"] = cut["train"] + cut.pop(name)
    splits = {name: data.subset(sorted(idx)) for name, idx in cut.items()}
    splits.update(extra)
    for name in ("train", "val", "test"):
        if name not in splits or len(splits[name]) == 0:
            raise LabelledDataError(
                f"{data_cfg.data}: the {name} split is empty ({len(data)} examples); give more "
                "data, other --split fractions, or --val-data/--test-data"
            )
    return splits


def read_run_config(run_dir: str | Path) -> dict:
    """The stored ``config.json`` of a run, checked to be a classify or tag run."""
    return runs.read_run_config(run_dir, KINDS, "classify or tag")


def _task(
    model_cfg, data_cfg, train_cfg, audio, aligned, stored=None, transfer=None
) -> ClassifyTask:
    if transfer is not None and transfer.init_from and data_cfg.tokens == "auto":
        level = lm_level(transfer.init_from)
        unit = "words" if level == "word" else "characters"
        print(f"--tokens auto: {level} (the language model of --init-from reads {unit})")
        data_cfg = dataclasses.replace(data_cfg, tokens=level)
    splits = read_splits(data_cfg, audio, aligned)
    if transfer is not None and transfer.init_from:
        text = splits["train"].kind == "text"
        check_init_from(transfer.init_from, model_cfg, data_cfg.tokens if text else None)
    # training reads train and val only: a test label unseen in training is evaluate's business
    task = ClassifyTask(
        model_cfg,
        data_cfg,
        {"train": splits["train"], "val": splits["val"]},
        sizes={name: len(split) for name, split in splits.items()},
        batch_size=train_cfg.batch_size if stored is None else stored["batch_size"],
        seed=train_cfg.seed,
        device=resolve_device(train_cfg.device),
        encoder=InputEncoder.from_json(stored["input"]) if stored else None,
        labels=LabelEncoder(stored["classes"]) if stored else None,
        audio=audio,
        transfer=transfer,
        lr=train_cfg.lr,
    )
    if task.tokens_choice is not None:  # stored: data.tokens is the level, tokens_auto why
        print(task.tokens_choice.reason, flush=True)
    return task


def train_classify(
    model_cfg: ClassifyModelConfig | None,
    data_cfg: ClassifyDataConfig | None,
    train_cfg: TrainConfig,
    *,
    audio: AudioConfig | None = None,
    aligned: bool = False,
    transfer: TransferConfig | None = None,
    callbacks=(),
) -> RunResult:
    """Train (or with ``train_cfg.resume``, continue) a classifier or tagger into ``out``.

    On resume the model, data, vocabulary and classes come from the run's config.json.
    ``transfer``: start from a language-model run and fine-tune ULMFiT's way (``transfer``).
    """
    model_cfg, data_cfg, stored = runs.run_configs(
        train_cfg, KINDS, ClassifyModelConfig, ClassifyDataConfig, model_cfg, data_cfg
    )
    if stored is not None:
        audio = stored_config(AudioConfig, stored["audio"])
        aligned = stored["aligned"]
        # the weights come from the checkpoint: the language model is not read again
        transfer = dataclasses.replace(
            stored_config(TransferConfig, stored.get("transfer", {})), init_from=None
        )
    else:
        # one mel range for every file, stored in the run: below the lowest Nyquist frequency
        audio, note = resolve_f_max(audio or AudioConfig(), _wav_rates(data_cfg))
        if note:
            print(f"audio: {note}", flush=True)
    task = _task(model_cfg, data_cfg, train_cfg, audio or AudioConfig(), aligned, stored, transfer)
    return Trainer(task, train_cfg, callbacks).run()


def train_tag(
    model_cfg: ClassifyModelConfig | None,
    data_cfg: ClassifyDataConfig | None,
    train_cfg: TrainConfig,
    *,
    audio: AudioConfig | None = None,
    transfer: TransferConfig | None = None,
    callbacks=(),
) -> RunResult:
    """Train (or continue) a tagger: ``train_classify`` with one label per step."""
    return train_classify(
        model_cfg,
        data_cfg,
        train_cfg,
        audio=audio,
        aligned=True,
        transfer=transfer,
        callbacks=callbacks,
    )


def _wav_rates(data_cfg: ClassifyDataConfig) -> list[int]:
    """The sample rates of the WAV files in the data's folders (none for other data)."""
    folders = [Path(p) for p in (data_cfg.data, data_cfg.val_data, data_cfg.test_data) if p]
    return [wav_rate(f) for folder in folders if folder.is_dir() for f, _ in audio_files(folder)]


def load_classifier(run_dir: str | Path, which: str = "best", device: str = "cpu"):
    """A run's model (``best`` or ``last`` weights), input encoder, classes and stored config."""
    run = load_run(run_dir, which, device, kinds=KINDS)
    return run.model, run.extra["encoder"], run.extra["labels"], run.task


def rebuild(task: dict) -> Loaded:
    """A classify or tag run's (untrained) model, input encoder and labels, from its task."""
    encoder = InputEncoder.from_json(task["input"])
    labels = LabelEncoder(task["classes"])
    model = build_classifier(
        stored_config(ClassifyModelConfig, task["model"]),
        encoder,
        len(labels.classes),
        task["aligned"],
    )
    return Loaded(model, {"encoder": encoder, "labels": labels})


def _exists(path: Path) -> bool:
    """Whether ``path`` names something on disk; a long text given to classify is not a path
    (``exists`` raises "File name too long" for it)."""
    try:
        return path.exists()
    except OSError:
        return False


def read_inputs(source: str, task: dict) -> tuple[list, list[str]]:
    """Unlabelled inputs for ``predict``, and a name for each: a table's text column, an
    ``.npz`` (array ``x``) or ``.npy`` (``(N, T, F)`` or one ``(T, F)``) of sequences, a ``.ts``
    file, a WAV file or a folder of them, or (for a text model) the text itself."""
    from rnnkit.audio import log_mel, read_wav

    data_cfg = stored_config(ClassifyDataConfig, task["data"])
    path = Path(source)
    kind = task["input_kind"]
    if kind == "tokens":
        return read_token_inputs(source, data_cfg.text_col)
    if kind == "text" and (not _exists(path) or path.suffix.lower() not in READABLE):
        if not source.strip():
            raise LabelledDataError("an empty text has nothing to classify")
        return [source], [source]
    if not path.exists():
        raise LabelledDataError(f"no such file or folder: {source}")
    audio = stored_config(AudioConfig, task["audio"])
    if path.is_dir() or path.suffix.lower() == ".wav":
        files = sorted(path.rglob("*.wav")) if path.is_dir() else [path]
        if not files:
            raise LabelledDataError(f"{path}: no .wav files")
        features = [log_mel(*read_wav(f), audio, name=str(f)).numpy() for f in files]
        return features, [str(f) for f in files]
    if path.suffix in (".npz", ".npy"):
        x, lengths = (
            load_arrays(path, ("x",), optional=("lengths",))
            if path.suffix == ".npz"
            else (*load_arrays(path, ()), None)
        )
        if x.ndim == 2:  # one (T, F) sequence
            x = x[None]
        if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
            raise LabelledDataError(f"{path}: x has shape {x.shape}; want (N, T, F) numbers")
        return sequences(x, lengths, path), [f"{path}[{i}]" for i in range(len(x))]
    if path.suffix == ".ts":
        data = read_ts(path)
        return data.inputs, [f"{path}:{i}" for i in range(len(data))]
    if table_suffix(path) in TEXT_SUFFIXES and kind == "text":
        col = data_cfg.text_col
        texts = []
        for number, row in table_rows(path):
            if col not in row:
                raise LabelledDataError(f"{path}, line {number}: no column {col!r}")
            texts.append(str(row[col]))
        return texts, [f"{path}:{i + 1}" for i in range(len(texts))]
    raise LabelledDataError(f"{path}: cannot read {kind} input from a {path.suffix!r} file")


def split_tokens(text: str) -> list[str]:
    """The tokens of a text to tag: split at whitespace, as written (case and punctuation kept).

    A tagger learns from token lists given whole (a .jsonl list, a .conll column), so a token is
    whatever the data separated, and the vocabulary matches it exactly: ``"the dog ."`` has three
    tokens, ``"the dog."`` two.
    """
    return text.split()


def read_token_inputs(source: str, token_col: str = "text") -> tuple[list, list[str]]:
    """Token lists to tag, and a name for each: a ``.jsonl``/``.csv``/``.tsv`` table's token
    column (a list, or a string split at whitespace), a ``.conll``/``.bio`` file (the first
    column; tags, if there, are ignored), a ``.txt`` file (one sequence a line), or the text
    itself (split at whitespace, see ``split_tokens``)."""
    path = Path(source)
    if not _exists(path) or table_suffix(path) not in TOKEN_READABLE:
        tokens = split_tokens(source)
        if not tokens:
            raise LabelledDataError("an empty text has nothing to tag")
        return [tokens], [source]
    suffix = table_suffix(path)
    if path.is_dir():
        raise LabelledDataError(f"{path} is a folder; a tagger of tokens reads text or files")
    if suffix in TAG_SUFFIXES:
        data = read_conll(path, tagged=False)
        return data.inputs, [f"{path}:{i + 1}" for i in range(len(data))]
    inputs, names = [], []
    if suffix == ".txt":
        rows = [(number, line) for number, line in enumerate(path.read_text().splitlines(), 1)]
    else:
        rows = []
        for number, row in table_rows(path):
            if token_col not in row:
                raise LabelledDataError(
                    f"{path}, line {number}: no column {token_col!r} (the run's --text-col); "
                    f"the columns are {sorted(row)}"
                )
            rows.append((number, row[token_col]))
    for number, value in rows:
        if isinstance(value, list):
            tokens = [str(t) for t in value]
        elif isinstance(value, str):
            tokens = split_tokens(value)
        else:
            raise LabelledDataError(
                f"{path}, line {number}: column {token_col!r} holds {value!r}, not tokens"
            )
        if not tokens:
            if suffix == ".txt":  # a blank line separates nothing
                continue
            raise LabelledDataError(f"{path}, line {number}: no tokens to tag")
        inputs.append(tokens)
        names.append(f"{path}:{number}")
    if not inputs:
        raise LabelledDataError(f"{path} holds nothing to tag")
    return inputs, names


@torch.no_grad()
def predict(run_dir: str | Path, inputs: list, *, which="best", device="cpu", top=1) -> list[dict]:
    """The ``top`` classes (with probabilities) of each input (text, token list for a tagger,
    ``(T, F)`` array).

    A classify run gives ``{"label": class, "top": [[class, p], ...]}`` per input; a tag run
    gives one label per step: ``{"labels": [class, ...], "top": [[[class, p], ...], ...]}``.
    """
    return label_inputs(*load_classifier(run_dir, which, device), inputs, top)


def label_inputs(model, encoder, labels, task: dict, inputs: list, top: int = 1) -> list[dict]:
    """``predict`` with a run already loaded (``load_classifier``'s four values)."""
    if task["aligned"]:
        # a tagger owes a label to every token: the training cut (--max-length) is not applied,
        # the recurrent model reads any length
        encoder = dataclasses.replace(encoder, max_length=sys.maxsize)
    out = []
    for start in range(0, len(inputs), 256):
        x, lengths = pad_batch([encoder.encode(item) for item in inputs[start : start + 256]])
        probs = torch.softmax(logits_of(model, x.to(model.head.weight.device), lengths), -1)
        values, ids = probs.topk(min(top, probs.size(-1)), dim=-1)
        if task["aligned"]:  # (B, T, k): keep each sequence's own steps
            for v, i, n in zip(values.tolist(), ids.tolist(), lengths.tolist()):
                out.append(
                    {
                        "labels": [labels.classes[step[0]] for step in i[:n]],
                        "top": [
                            [[labels.classes[k], p] for k, p in zip(ks, ps)]
                            for ks, ps in zip(i[:n], v[:n])
                        ],
                    }
                )
            continue
        for v, i in zip(values.tolist(), ids.tolist()):
            out.append(
                {
                    "label": labels.classes[i[0]],
                    "top": [[labels.classes[k], p] for k, p in zip(i, v)],
                }
            )
    return out


def _text_baselines(splits, scored: Labelled, labels: LabelEncoder, true) -> dict:
    """Accuracy and macro-F1 on ``scored`` of the TF-IDF baselines, or why they did not run."""
    from rnnkit.tasks.classify.baselines import tfidf_baselines

    def ids(split: Labelled) -> torch.Tensor:  # a validation label unseen in training: dropped
        return torch.tensor([labels.encode(y) if y in labels.classes else -1 for y in split.labels])

    train_y, val_y = ids(splits["train"]), ids(splits["val"])
    keep = [i for i, y in enumerate(val_y.tolist()) if y >= 0]
    try:
        fitted = tfidf_baselines(
            (list(splits["train"].inputs), train_y),
            ([splits["val"].inputs[i] for i in keep], val_y[keep]),
            list(scored.inputs),
        )
    except ImportError as e:
        return {"note": str(e)}
    out = {}
    for name, b in fitted.items():
        report = classification_report(true, b["pred"], labels.classes)
        out[name] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "C": b["C"]}
    return out


def evaluate_run(
    run_dir: str | Path,
    *,
    data: str | None = None,
    split: str = "test",
    which: str = "best",
    device: str = "cpu",
    plot: str | Path | None = "",
    baselines: bool = True,
) -> dict:
    """Accuracy, macro-F1, per-class figures and the confusion matrix of a run on held-out data.

    With ``data``, that labelled file (read with the run's column settings) is scored; otherwise
    ``split`` of the run's own data, cut as in training. The majority-class baseline (the most
    common training class) and the class shares are reported beside the model; for a text
    classifier, with ``baselines``, also a word and a character n-gram TF-IDF logistic
    regression fitted on the run's training split, ``C`` chosen on its validation split
    (``baselines.tfidf_baselines``; scikit-learn, else a note says why not). ``plot``: where
    to write the confusion-matrix PNG (default ``RUN_DIR/confusion-<split>.png``; None: none).
    """
    model, encoder, labels, stored = load_classifier(run_dir, which, device)
    data_cfg = stored_config(ClassifyDataConfig, stored["data"])
    audio = stored_config(AudioConfig, stored["audio"])
    aligned = stored["aligned"]
    splits = read_splits(data_cfg, audio, aligned)
    if data is not None:
        scored = load_labelled(data, data_cfg.columns, aligned=aligned, audio=audio)
        name = data
    else:
        if split not in splits:
            raise ValueError(f"--split must be train, val or test, got {split!r}")
        scored, name = splits[split], f"{data_cfg.data} [{split}]"
    task = ClassifyTask(
        stored_config(ClassifyModelConfig, stored["model"]),
        data_cfg,
        {"train": splits["train"], "scored": scored},
        batch_size=stored["batch_size"],
        seed=0,
        device=next(model.parameters()).device,
        encoder=encoder,
        labels=labels,
        audio=audio,
    )
    with torch.no_grad():
        true, pred, _, loss = task.predictions(model, "scored")
    report = classification_report(true, pred, labels.classes)
    _, train_y = task.data["train"]
    train_ids = torch.cat(train_y) if aligned else torch.tensor(train_y)
    result = {
        "data": name,
        "checkpoint": which,
        "loss": loss,
        **report,
        "majority": majority_baseline(train_ids, true, labels.classes),
        "imbalance": imbalance(true, labels.classes),
        "classes": labels.classes,
    }
    if baselines and stored["input_kind"] == "text" and not aligned:
        result["baselines"] = _text_baselines(splits, scored, labels, true)
    if plot is not None:
        target = (
            Path(plot)
            if plot
            else Path(run_dir) / f"confusion-{split if data is None else 'data'}.png"
        )
        try:
            result["confusion_png"] = str(
                plot_confusion(report["confusion"], labels.classes, target, title=name)
            )
        except ImportError as e:
            result["confusion_png"] = f"(not drawn: {e})"
    return result
