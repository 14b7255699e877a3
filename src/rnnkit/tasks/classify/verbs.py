"""Classification's and tagging's run verbs as the command line calls them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rnnkit.tasks.classify import run


@dataclass(kw_only=True)
class EvaluateOptions:
    """What ``rnnkit evaluate`` scores for a classify or tag run."""

    data: str | None = None
    """Score this labelled file (read with the run's column settings) instead of its split."""
    split: Literal["train", "val", "test"] = "test"
    """Which part of the run's own data to score, cut as in training."""
    plot: str | None = ""
    """Write the confusion matrix to this PNG (empty: RUN_DIR/confusion-SPLIT.png; none: no
    picture)."""
    baselines: bool = True
    """Text classifiers: also fit and score a word and a character n-gram TF-IDF logistic
    regression on the run's training split (needs scikit-learn: rnnkit[baselines])."""


BASELINE_NAMES = {
    "tfidf_word": "TF-IDF words + log. regr.",
    "tfidf_char": "TF-IDF chars + log. regr.",
}


def _baseline_lines(baselines: dict | None) -> list[str]:
    if not baselines:
        return []
    if "note" in baselines:
        return [f"(TF-IDF baselines not run: {baselines['note']})"]
    return [
        f"{BASELINE_NAMES.get(name, name):<26}{b['accuracy']:>10.4f}{b['macro_f1']:>10.4f}"
        for name, b in baselines.items()
    ]


def show_evaluate(m: dict, options: EvaluateOptions) -> str:
    major = m["majority"]
    lines = [
        f"{'data':<18}{m['data']}",
        f"{'checkpoint':<18}{m['checkpoint']}",
        f"{'examples':<18}{m['examples']:,}  (class ratio largest/smallest "
        f"{m['imbalance']['ratio']})",
        "",
        f"{'':<26}{'accuracy':>10}{'macro-F1':>10}",
        f"{'model':<26}{m['accuracy']:>10.4f}{m['macro_f1']:>10.4f}",
        f"{'majority (' + major['class'][:12] + ')':<26}{major['accuracy']:>10.4f}"
        f"{major['macro_f1']:>10.4f}",
        *_baseline_lines(m.get("baselines")),
        "",
        f"{'class':<20}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}{'share':>8}",
    ]
    for name, row in m["per_class"].items():
        share = m["imbalance"]["shares"][name]
        lines.append(
            f"{name[:19]:<20}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
            f"{row['support']:>9}{share:>8.3f}"
        )
    if "confusion_png" in m:
        lines += ["", f"confusion matrix: {m['confusion_png']}"]
    return "\n".join(lines)


@dataclass(kw_only=True)
class PredictOptions:
    """What ``rnnkit predict`` classifies or tags."""

    inputs: list[str] = field(default_factory=list, metadata={"positional": True})
    """Classify runs: files (.csv/.jsonl text column, .npz, .ts, .wav or a folder of them), or
    for a text model the texts themselves; tag runs: texts (tokens apart by spaces, as in the
    training data), .txt (a text a line), .conll/.bio (first column) or .jsonl/.csv (the token
    column)."""
    top: int = 1
    """Show the k most likely classes (with --json: per token for a tagger)."""


def predict(
    run_dir: str | Path, *, inputs: list[str], top: int = 1, which="best", device="cpu"
) -> list[dict]:
    """Read every input (``run.read_inputs``) and classify or tag it: one record each, with
    ``input`` (its name) and, for a tagger given tokens, ``tokens``."""
    if not inputs:
        raise ValueError("give something to classify or tag: files, or texts for a text model")
    if top < 1:
        raise ValueError(f"--top must be >= 1, got {top}")
    loaded = run.load_classifier(run_dir, which, device)
    task = loaded[3]
    items, names = [], []
    for source in inputs:
        got, got_names = run.read_inputs(source, task)
        items += got
        names += got_names
    results = run.label_inputs(*loaded, items, top)
    tokens = task["aligned"] and task["input_kind"] == "tokens"
    return [
        {"input": name, **({"tokens": item} if tokens else {}), **result}
        for name, item, result in zip(names, items, results)
    ]


def show_predict(records: list[dict], options: PredictOptions) -> str:
    """A classifier: the top classes, then the input's name; a tagger: ``token/TAG`` pairs
    (or, for numbers, the tags and the input's name)."""
    lines = []
    for r in records:
        if "labels" in r:
            if "tokens" in r:
                lines.append(" ".join(f"{t}/{tag}" for t, tag in zip(r["tokens"], r["labels"])))
            else:
                lines.append(f"{' '.join(r['labels'])}\t{r['input']}")
        else:
            shown = "  ".join(f"{label} {p:.3f}" for label, p in r["top"])
            lines.append(f"{shown}\t{r['input']}")
    return "\n".join(lines)
