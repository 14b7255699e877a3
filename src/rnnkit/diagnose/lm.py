"""A trained language model as the subject of a diagnosis: its model, vocabulary and text.

The subject is given, not loaded: reading a run folder is the task's business
(``rnnkit.tasks.lm.run.load_run_text``), and diagnose never imports tasks. For example::

    subject = LMSubject(*load_run_text("runs/shk", split="val"))
    flow = lm_gradient_flow(subject, steps=200)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.diagnose.gates import GateStats, gate_stats
from rnnkit.diagnose.gradients import GradientFlow, gradient_flow
from rnnkit.diagnose.hidden import passage


@dataclass
class LMSubject:
    model: nn.Module
    """The run's ``ManyToMany``: ``embedding``, ``rnn`` (an rnnkit layer), ``head``."""
    vocab: object
    ids: Tensor
    """Token ids of text to diagnose it on (say one split of its training corpus)."""


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


def lm_gate_stats(
    subject: LMSubject,
    steps: int,
    *,
    batch_size: int = 16,
    seed: int = 0,
    label: str = "checkpoint",
) -> GateStats:
    """Gate statistics of a trained LM over ``batch_size`` random windows of its text."""
    x, _ = windows(subject.ids, steps, batch_size, seed)
    with torch.no_grad():
        emb = subject.model.embedding(x)
    return gate_stats(subject.model.rnn, emb, label)


def lm_passage(subject: LMSubject, offset: int, length: int) -> str:
    """``length`` characters of the subject's text from ``offset`` on, started at a new line
    (outside any string) when one comes within the first 2000 characters."""
    return passage(subject.vocab.decode(subject.ids[offset : offset + length + 2000]), length, True)
