"""Transfer from a language model to a classifier (Dai and Le 2015; ULMFiT, Howard and Ruder
2018): the classifier's embedding and recurrent layers start from a trained ``lm`` run.

``init_from_lm`` loads the run through the run lifecycle (``tasks.base.load_run``), checks that
the two networks have the same cell and sizes, and copies the recurrent layers as they are and
the embedding row by row, mapped by token: a classifier token the language model knows takes
its row, ``<unk>`` takes the row of the model's unknown symbol, and any other token (``<bos>``,
``<eos>``, characters or words the language model never saw) the mean of the language model's
rows, the usual start for a new word (ULMFiT's fastai code does the same). ``<pad>`` stays zero. The
token levels must agree: a character or byte model starts a ``--tokens char`` classifier, a
word model (``--tokenizer word``) a ``--tokens word`` one.

``TransferConfig`` also holds ULMFiT's fine-tuning options (``rnnkit.training.schedules``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from rnnkit.text.tokens import SPECIALS, TokenVocab
from rnnkit.training.config import check_types


class TransferError(ValueError):
    """A language-model run that cannot start this classifier; the message says why."""


@dataclass(kw_only=True)
class TransferConfig:
    """Starting from a language model, and ULMFiT's fine-tuning schedule."""

    init_from: str | None = None
    """A language-model run (`rnnkit train lm`) whose embedding and recurrent layers start this
    classifier; the cell and sizes must match, --tokens auto becomes the model's level (char,
    or word for a --tokenizer word model)."""
    lr_decay: float = 1.0
    """Discriminative rates: each layer group below the head trains this many times slower
    (ULMFiT: 2.6; 1: one rate for all)."""
    unfreeze_every: int = 0
    """Gradual unfreezing: only the head trains at first, one more layer group below joins every
    this many steps (0: all train from the start)."""
    schedule: Literal["default", "slanted"] = "default"
    """default: the trainer's warm-up and cosine decay; slanted: ULMFiT's slanted triangular
    rate (a short linear rise to --lr, then a long linear fall)."""
    slanted_cut: float = 0.1
    """Slanted schedule: the fraction of training the rate rises for."""
    slanted_ratio: float = 32.0
    """Slanted schedule: how many times smaller the rate is at the start and end than at the
    peak."""

    def __post_init__(self) -> None:
        check_types(self)
        if self.init_from is not None:
            self.init_from = str(Path(self.init_from).expanduser().absolute())
        if self.lr_decay < 1:
            raise ValueError(f"--lr-decay must be >= 1 (1: one rate for all), got {self.lr_decay}")
        if self.unfreeze_every < 0:
            raise ValueError(f"--unfreeze-every must be >= 0, got {self.unfreeze_every}")
        if self.schedule not in ("default", "slanted"):
            raise ValueError(f"--schedule must be default or slanted, got {self.schedule!r}")
        if not 0 < self.slanted_cut < 1:
            raise ValueError(f"--slanted-cut must lie in (0, 1), got {self.slanted_cut}")
        if self.slanted_ratio < 1:
            raise ValueError(f"--slanted-ratio must be >= 1, got {self.slanted_ratio}")

    @property
    def active(self) -> bool:
        """Whether anything differs from plain training."""
        return (
            self.init_from is not None
            or self.lr_decay != 1
            or self.unfreeze_every > 0
            or self.schedule != "default"
        )


# what must agree between the language model and the classifier, as flags name them
MATCHED = ("cell", "hidden_size", "num_layers", "embedding_size")


def check_match(lm_model: dict, model_cfg, run: str) -> None:
    """Refuse, in one line, a classifier whose network differs from the language model's."""
    differ = [k for k in MATCHED if lm_model.get(k) != getattr(model_cfg, k)]
    if differ or model_cfg.bidirectional:
        flags = " ".join(f"--{k.replace('_', '-')} {lm_model.get(k)}" for k in MATCHED)
        why = ", ".join(
            f"{k} {getattr(model_cfg, k)} here, {lm_model.get(k)} there" for k in differ
        )
        if model_cfg.bidirectional:
            why = ", ".join(filter(None, [why, "bidirectional here, one direction there"]))
        raise TransferError(
            f"--init-from {run}: the language model's network differs ({why}); "
            f"train the classifier with {flags} --no-bidirectional"
        )


def _level_of(tokenizer: str) -> str:
    """The classifier's ``--tokens`` that a language model's ``--tokenizer`` matches."""
    return "word" if tokenizer == "word" else "char"


def lm_level(run: str) -> str:
    """The ``--tokens`` level (char or word) of a language-model run, from its ``config.json``."""
    from rnnkit.training.runs import read_run_config

    config = read_run_config(run, ("lm",), "a language-model (lm)")
    return _level_of(config["task"]["data"].get("tokenizer", "char"))


def _refuse_level(run: str, lm: str, level: str | None) -> TransferError:
    unit = {"char": "characters", "word": "words"}
    return TransferError(
        f"--init-from {run}: the language model reads {unit[lm]}, the classifier "
        f"{unit.get(level or '', level or 'numbers')}; train the classifier on text with "
        f"--tokens {lm}"
    )


def check_init_from(run: str, model_cfg, level: str | None) -> None:
    """Refuse a language-model run that cannot start this classifier before training starts
    (nothing is written): read from its ``config.json`` alone."""
    from rnnkit.training.runs import read_run_config

    config = read_run_config(run, ("lm",), "a language-model (lm)")
    check_match(config["task"]["model"], model_cfg, run)
    lm = _level_of(config["task"]["data"].get("tokenizer", "char"))
    if level != lm:
        raise _refuse_level(run, lm, level)


def lm_token_rows(lm_vocab, vocab: TokenVocab, run: str = "") -> list[int | None]:
    """For each classifier token, the language model's row for it (None: none, a new token)."""
    lm = _level_of(lm_vocab.kind)
    if vocab.level != lm:
        raise _refuse_level(run, lm, vocab.level)
    rows: list[int | None] = []
    for token in vocab.tokens:
        if token == SPECIALS[1]:  # <unk>: the language model's own unknown symbol
            token = lm_vocab.UNKNOWN
        elif token in SPECIALS:
            rows.append(None)
            continue
        if lm_vocab.kind == "byte":
            encoded = token.encode("utf-8")
            rows.append(encoded[0] if len(encoded) == 1 else None)
        else:
            rows.append(lm_vocab.lookup([token])[0] if token in lm_vocab else None)
    return rows


@torch.no_grad()
def copy_layers(source: nn.Module, target: nn.Module, run: str) -> None:
    """The language model's recurrent weights into the classifier's layers, matched by layer,
    direction and name: the layouts differ when one runs torch's kernels and the other the
    unrolled loop (--recurrent-dropout or --zoneout on one side only)."""
    from rnnkit.layers.build import layer_parameters

    have, want = layer_parameters(source), layer_parameters(target)
    if set(have) != set(want) or any(have[k].shape != p.shape for k, p in want.items()):
        raise TransferError(f"--init-from {run}: the recurrent layers' parameters differ")
    for key, p in want.items():
        p.copy_(have[key])


@torch.no_grad()
def init_from_lm(model: nn.Module, model_cfg, vocab: TokenVocab | None, run: str) -> dict:
    """Copy a language-model run's embedding (mapped by token) and recurrent layers into
    ``model`` (a ``ManyToOne``); returns what was copied: ``{"known": n, "new": m}``."""
    from rnnkit.tasks.base import load_run

    if vocab is None:
        raise TransferError(f"--init-from {run}: a language model starts a model of text only")
    lm = load_run(run, "best", "cpu", kinds=("lm",))
    check_match(lm.task["model"], model_cfg, run)
    copy_layers(lm.model.rnn, model.rnn, run)
    source = lm.model.embedding.weight  # (V_lm, E)
    target = model.embedding.weight  # (V, E)
    mean = source.mean(0)
    rows = lm_token_rows(lm.extra["vocab"], vocab, run)
    for i, row in enumerate(rows):
        target[i] = mean if row is None else source[row]
    target[vocab.pad_id] = 0  # the padding row stays zero (padding_idx)
    known = sum(r is not None for r in rows)
    return {"known": known, "new": len(rows) - known - 1}  # <pad> is neither
