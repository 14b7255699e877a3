"""Character (byte, or word) language modelling: predict the next token of a text, char-rnn style.

The model is ``ManyToMany`` with an embedding in and the vocabulary out. Training reads each
batch row as its own contiguous stream of the corpus and carries the hidden state from one
window to the next, detached (truncated back-propagation through time); the state is reset when
a pass over the training split starts again. Evaluation does the same on a held-out split and
reports the mean loss in nats per token and in bits per token (per character with the default
tokenizer, per word with ``--tokenizer word``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.architectures import ManyToMany
from rnnkit.datasets.registry import stored_data_path
from rnnkit.datasets.splits import split_positions
from rnnkit.state import State, detach_state
from rnnkit.tasks.network_config import LayerOptions, check_network, layer_options
from rnnkit.tasks.regularization import Regularizer, TokenRegularisers, check_regularization
from rnnkit.text.streams import StreamBatcher, Window, eval_windows, split_by_position
from rnnkit.text.tokens import tokenize
from rnnkit.text.vocab import TokenizerName, Vocab
from rnnkit.text.words import WordVocab
from rnnkit.training.config import check_types
from rnnkit.training.task import Task


@dataclass(kw_only=True)
class LMModelConfig(TokenRegularisers, LayerOptions):
    """The network: embedding -> recurrent layers -> linear head over the vocabulary."""

    cell: str = "lstm"
    """Recurrent cell: {cells}."""
    hidden_size: int = 256
    """Hidden units per layer."""
    num_layers: int = 2
    """Stacked recurrent layers."""
    dropout: float = 0.0
    """Dropout between layers and before the head, in training."""
    embedding_size: int = 64
    """Width of the token embedding."""

    def __post_init__(self) -> None:
        check_network(self, ("hidden_size", "num_layers", "embedding_size"))
        check_regularization(self)


@dataclass(kw_only=True)
class LMDataConfig:
    """The corpus and how it is cut."""

    data: str
    """A data-set name (see `rnnkit datasets`), a text file, a folder of text files, or a glob."""
    tokenizer: TokenizerName = "char"
    """char: the characters of the training text; byte: the 256 byte values; word: lower-cased
    words and punctuation marks, as `train classify --tokens word` reads them (whitespace is
    not a token: samples join the words with spaces)."""
    min_count: int = 2
    """--tokenizer word: keep the words seen at least this many times in the training part;
    the rest read as <unk>."""
    val_fraction: float = 0.05
    """Fraction of the corpus (taken after the training part) for validation."""
    test_fraction: float = 0.05
    """Fraction of the corpus (at its end) for the test split."""
    bptt: int = 128
    """Time steps per truncated back-propagation window."""
    text_col: str | None = None
    """Read --data as labelled examples (.csv, .tsv, .jsonl, or a labelled data set such as
    rotten-tomatoes) and learn the texts of this column, one a line: those of the part a
    classifier trains on (the set's own split, or the default --split-fractions and seed), so
    its validation and test texts stay unseen."""
    extra_data: str | None = None
    """More text for the training part only (a file, folder, glob or text data set), before
    --data's; validation and test come from --data alone."""

    def __post_init__(self) -> None:
        check_types(self)
        self.data = stored_data_path(self.data)
        self.extra_data = stored_data_path(self.extra_data)
        if self.tokenizer not in ("char", "byte", "word"):
            raise ValueError(f"--tokenizer must be char, byte or word, got {self.tokenizer!r}")
        if self.min_count < 1:
            raise ValueError(f"--min-count must be >= 1, got {self.min_count}")
        for flag, v in (
            ("--val-fraction", self.val_fraction),
            ("--test-fraction", self.test_fraction),
        ):
            if not 0 < v < 0.5:
                raise ValueError(f"{flag} must lie in (0, 0.5), got {v}")
        if self.bptt < 1:
            raise ValueError(f"--bptt must be >= 1, got {self.bptt}")


def build_lm(vocab_size: int, cfg: LMModelConfig) -> ManyToMany:
    return ManyToMany(
        vocab_size,
        vocab_size=vocab_size,
        embedding_size=cfg.embedding_size,
        cell=cfg.cell,
        layer_options=layer_options(cfg),
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
    )


def encode_corpus(text: str, data: LMDataConfig, vocab: Vocab | None = None, extra: str = ""):
    """Split a corpus by position, build the vocabulary on the training part, encode all;
    ``extra`` text (``--extra-data``) goes before the training part and is never held out."""
    if not text:
        raise ValueError(f"the corpus {data.data!r} is empty")
    if data.tokenizer == "word":
        return _encode_words(text, data, vocab, extra)
    cut = int(len(text) * (1 - data.val_fraction - data.test_fraction))
    vocab = vocab or Vocab.build(extra + text[:cut], data.tokenizer)
    splits = split_by_position(vocab.encode(text), data.val_fraction, data.test_fraction)
    if extra:
        splits["train"] = torch.cat([vocab.encode(extra), splits["train"]])
    return vocab, splits


def _encode_words(text: str, data: LMDataConfig, vocab: Vocab | None, extra: str):
    """``encode_corpus`` for words: the corpus is cut by word position, and the vocabulary
    counts the words of the training part (and of ``extra``) alone."""
    words = tokenize(text, "word")
    if not words:
        raise ValueError(f"the corpus {data.data!r} holds no words (--tokenizer word)")
    train = split_positions(len(words), data.val_fraction, data.test_fraction)["train"]
    extra_words = tokenize(extra, "word")
    vocab = vocab or WordVocab.from_words(
        extra_words + words[train.start : train.stop], data.min_count
    )
    ids = torch.tensor(vocab.lookup(words), dtype=torch.long)
    splits = split_by_position(ids, data.val_fraction, data.test_fraction)
    if extra_words:
        splits["train"] = torch.cat([torch.tensor(vocab.lookup(extra_words)), splits["train"]])
    return vocab, splits


class LanguageModelTask(Task):
    """The ``lm`` task for the trainer (see ``rnnkit.training.task.Task``)."""

    kind = "lm"
    unit = "tokens"
    loss_label = "nats per token"

    def __init__(
        self,
        model_cfg: LMModelConfig,
        data_cfg: LMDataConfig,
        text: str,
        *,
        batch_size: int,
        device: torch.device | str = "cpu",
        vocab: Vocab | None = None,
        rank: int = 0,
        world_size: int = 1,
        extra: str = "",
    ) -> None:
        self.model_cfg, self.data_cfg = model_cfg, data_cfg
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.vocab, self.splits = encode_corpus(text, data_cfg, vocab, extra)
        self.batcher = StreamBatcher(
            self.splits["train"], batch_size, data_cfg.bptt, rank=rank, world_size=world_size
        )
        self.state: State | None = None
        self.regularizer = Regularizer()  # build_model sets the model's own

    # -- the Task -------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        m = self.model_cfg
        self.regularizer = Regularizer(m.embedding_dropout, m.ar, m.tar)
        return self.regularizer.attach(build_lm(len(self.vocab), m))

    def shard(self, rank: int, world_size: int) -> None:
        # rank r reads streams r, r + W, ...; each rank carries the state of its own streams
        self.batcher = StreamBatcher(
            self.splits["train"],
            self.batch_size,
            self.data_cfg.bptt,
            rank=rank,
            world_size=world_size,
        )

    def train_batch(self, step: int) -> Window:
        return self.batcher.window(step)

    def batch_loss(self, model: nn.Module, batch: Window) -> tuple[Tensor, int]:
        if batch.starts_pass:
            self.state = None  # a new pass over the corpus: the streams start afresh
        x, y = batch.x.to(self.device), batch.y.to(self.device)
        logits, state = model(x, self.state)  # (B, T, V)
        self.state = detach_state(state)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        return loss + self.regularizer.penalty(), y.numel()

    def evaluate(self, model: nn.Module, split: str, limit: int | None = None) -> dict:
        ids = self.splits[split]
        if limit is not None:
            ids = ids[: limit + 1]
        return evaluate_lm(model, ids, self.batch_size, self.data_cfg.bptt, self.device)

    def carry(self) -> dict[str, Tensor]:
        if self.state is None:
            return {}
        parts = (self.state,) if isinstance(self.state, Tensor) else self.state
        return {str(i): t for i, t in enumerate(parts)}

    def restore_carry(self, tensors: dict[str, Tensor]) -> None:
        if not tensors:
            self.state = None
            return
        parts = tuple(tensors[str(i)] for i in range(len(tensors)))
        self.state = parts[0] if len(parts) == 1 else parts

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": asdict(self.model_cfg),
            "data": asdict(self.data_cfg),
            "vocab": self.vocab.to_json(),
            "batch_size": self.batch_size,
        }


def evaluate_lm(
    model: nn.Module, ids: Tensor, batch_size: int, bptt: int, device: torch.device
) -> dict[str, float]:
    """Mean next-token loss over ``ids`` with the state carried across windows."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for w in eval_windows(ids, batch_size, bptt):
            logits, state = model(w.x.to(device), state)
            y = w.y.to(device)
            total += F.cross_entropy(
                logits.flatten(0, 1).float(), y.flatten(), reduction="sum"
            ).item()
            count += y.numel()
    model.train(was_training)
    loss = total / count
    return {"loss": loss, "bpc": loss / math.log(2), "tokens": count}
