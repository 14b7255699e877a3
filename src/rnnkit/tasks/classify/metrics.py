"""Scores of a classifier or tagger: accuracy, macro-F1, per-class figures, the confusion matrix.

Macro-F1 is the plain mean of the per-class F1 scores, so a rare class counts as much as a common
one; with imbalanced classes it tells more than accuracy does. A class with no predictions and no
examples is left out of the mean; one with examples but no correct predictions scores 0.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from rnnkit.plotting import pyplot


def confusion_matrix(true: Tensor, pred: Tensor, n_classes: int) -> Tensor:
    """``(C, C)`` counts, rows the true class and columns the predicted one."""
    flat = true.long() * n_classes + pred.long()
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(true: Tensor, pred: Tensor, classes: list[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision, recall, F1 and support, as plain JSON."""
    cm = confusion_matrix(true, pred, len(classes)).double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), 0 * tp)
    present = (support > 0) | (predicted > 0)
    total = float(cm.sum())
    return {
        "examples": int(total),
        "accuracy": float(tp.sum() / max(total, 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion": cm.long().tolist(),
    }


def majority_baseline(train_labels: Tensor, true: Tensor, classes: list[str]) -> dict:
    """Always answer the most common training class: its accuracy and macro-F1 on ``true``."""
    majority = int(torch.bincount(train_labels, minlength=len(classes)).argmax())
    report = classification_report(true, torch.full_like(true, majority), classes)
    return {
        "class": classes[majority],
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
    }


def imbalance(labels: Tensor, classes: list[str]) -> dict:
    """Share of each class, and the ratio of the largest class to the smallest present one."""
    counts = torch.bincount(labels, minlength=len(classes)).double()
    present = counts[counts > 0]
    return {
        "shares": {c: round(float(counts[i] / counts.sum()), 4) for i, c in enumerate(classes)},
        "ratio": round(float(present.max() / present.min()), 3) if len(present) else 0.0,
    }


def plot_confusion(confusion: list[list[int]], classes: list[str], path: str | Path, title=""):
    """Write the confusion matrix as a PNG: counts in the cells, rows normalised for colour."""
    plt = pyplot("confusion-matrix plots")
    cm = torch.tensor(confusion, dtype=torch.float64)
    rows = cm / cm.sum(1, keepdim=True).clamp(min=1)
    n = len(classes)
    size = min(3 + 0.45 * n, 16)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if rows[i, j] > 0.5 else "black",
                )
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
