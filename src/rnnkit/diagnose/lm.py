"""A trained language-model run as the subject of a diagnosis: its model and text windows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.diagnose.gradients import GradientFlow, gradient_flow


@dataclass
class LMSubject:
    model: nn.Module
    """The run's ``ManyToMany``: ``embedding``, ``rnn`` (an rnnkit layer), ``head``."""
    vocab: object
    ids: Tensor
    """The token ids of one split of the run's corpus."""


def load_subject(run_dir: str | Path, which: str = "best", split: str = "val") -> LMSubject:
    """The run's model (on CPU, eval mode) and the ids of ``split`` of its own corpus."""
    from rnnkit.datasets import load_corpus
    from rnnkit.tasks.language_model import LMDataConfig, encode_corpus
    from rnnkit.tasks.lm_runs import load_model

    model, vocab, task = load_model(run_dir, which)
    data_cfg = LMDataConfig(**task["data"])
    _, splits = encode_corpus(load_corpus(data_cfg.data), data_cfg, vocab)
    if split not in splits:
        raise ValueError(f"split must be train, val or test, got {split!r}")
    return LMSubject(model, vocab, splits[split])


def windows(ids: Tensor, length: int, count: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``count`` random windows of ``length`` tokens and their next tokens: ``(B, T)`` each."""
    if ids.numel() < length + 2:
        raise ValueError(f"the text has {ids.numel()} tokens, fewer than --steps {length} + 2")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - length - 1, (count,), generator=g)
    x = torch.stack([ids[s : s + length] for s in starts.tolist()])
    y = torch.stack([ids[s + 1 : s + length + 1] for s in starts.tolist()])
    return x, y


def lm_gradient_flow(
    subject: LMSubject,
    steps: int,
    *,
    batch_size: int = 16,
    loss_at: str = "last",
    jacobians: bool = True,
    seed: int = 0,
    label: str = "checkpoint",
) -> GradientFlow:
    """Gradient flow of a trained LM: cross-entropy of the next token at the last step (or
    every step), through the embedded input windows."""
    x, y = windows(subject.ids, steps, batch_size, seed)
    model = subject.model
    with torch.no_grad():
        emb = model.embedding(x)

    def loss_fn(out: Tensor) -> Tensor:
        logits = model.head(out)  # (B, T, V)
        return F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (B, T)

    return gradient_flow(
        model.rnn, emb, loss_fn=loss_fn, loss_at=loss_at, jacobians=jacobians, label=label
    )
