"""Conditional generation: a category (a CSV column) -> a token sequence (another column).

The model is ``OneToMany`` with a class input: each distinct value of the condition column in
the training split is a class. Rows are split at random (seeded) into train, val and test;
training minimises the cross-entropy of each target token given the condition and the previous
tokens, and evaluation reports that loss per token on a held-out split, beside the unigram
baseline (the entropy of the training targets' token frequencies).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.architectures.one_to_many import OneToMany
from rnnkit.datasets.load import read_table_columns
from rnnkit.datasets.padding import pad_batch
from rnnkit.datasets.registry import stored_data_path
from rnnkit.datasets.splits import split_held_out_first
from rnnkit.tasks.network_config import LayerOptions, check_network, layer_options
from rnnkit.text.tokens import TokenLevel, TokenVocab
from rnnkit.text.unigram import unigram_cross_entropy
from rnnkit.training.batching import BatchPlan, python_shuffle
from rnnkit.training.config import check_types
from rnnkit.training.task import Task


@dataclass(kw_only=True)
class GenerateModelConfig(LayerOptions):
    """The network: condition embedding -> recurrent decoder -> vocabulary."""

    cell: str = "lstm"
    """Recurrent cell: {cells}."""
    hidden_size: int = 256
    """Hidden units per layer."""
    num_layers: int = 1
    """Stacked recurrent layers."""
    embedding_size: int = 64
    """Width of the token embedding."""
    condition_embedding_size: int = 32
    """Width of the condition's embedding."""
    init_state: bool = True
    """The condition sets the decoder's initial state."""
    feed: bool = True
    """The condition is fed to the decoder at every step."""
    dropout: float = 0.0
    """Dropout on embeddings, between layers and before the head, in training."""

    def __post_init__(self) -> None:
        check_network(
            self, ("hidden_size", "num_layers", "embedding_size", "condition_embedding_size")
        )
        if not (self.init_state or self.feed):
            raise ValueError("--no-init-state and --no-feed together leave the condition unused")


@dataclass(kw_only=True)
class GenerateDataConfig:
    """The table, its two columns, and how its rows are divided."""

    data: str
    """A CSV file with a header row (or TSV, JSONL), or a data-set name (wordfreq: columns
    language, word)."""
    condition_col: str
    """The column whose value conditions the generation (a category)."""
    target_col: str
    """The column to generate."""
    target_level: TokenLevel = "char"
    """Target tokens: char, word, or space."""
    val_fraction: float = 0.05
    """Share of rows held out for validation."""
    test_fraction: float = 0.05
    """Share of rows held out for the test split."""
    split_seed: int = 0
    """Seed of the shuffle that assigns rows to train, val and test."""

    def __post_init__(self) -> None:
        check_types(self)
        self.data = stored_data_path(self.data)
        if self.target_level not in ("char", "word", "space"):
            raise ValueError(
                f"--target-level must be char, word or space; got {self.target_level!r}"
            )
        for flag, v in (
            ("--val-fraction", self.val_fraction),
            ("--test-fraction", self.test_fraction),
        ):
            if not 0 < v < 0.5:
                raise ValueError(f"{flag} must lie in (0, 0.5), got {v}")


def read_table(data: str, condition_col: str, target_col: str) -> list[tuple[str, str]]:
    """``(condition, target)`` rows of a table file (CSV, TSV, JSONL) or a row data set, read
    and checked by ``rnnkit.datasets.load.read_table_columns``."""
    rows = read_table_columns(data, {"--condition-col": condition_col, "--target-col": target_col})
    return [(condition, target) for condition, target in rows]


def split_rows(
    rows: list[tuple[str, str]], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[tuple[str, str]]]:
    """Shuffle the rows with ``seed`` and cut them into test, val and train (the shared
    splitter, ``rnnkit.datasets.splits``: at least one row in each held-out part)."""
    cuts = split_held_out_first(len(rows), val_fraction, test_fraction, seed=seed, what="rows")
    return {name: [rows[i] for i in part] for name, part in cuts.items()}


def condition_index(conditions: list[str], value: str) -> int:
    """The class id of a condition value; an unseen one is an error listing the known ones."""
    try:
        return conditions.index(value)
    except ValueError:
        known = ", ".join(conditions[:20]) + (" ..." if len(conditions) > 20 else "")
        raise ValueError(
            f"condition {value!r} was not seen in training; known values: {known}"
        ) from None


def build_generator(vocab_size: int, num_conditions: int, cfg: GenerateModelConfig) -> OneToMany:
    return OneToMany(
        vocab_size,
        num_conditions=num_conditions,
        condition_embedding_size=cfg.condition_embedding_size,
        embedding_size=cfg.embedding_size,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
        cell=cfg.cell,
        layer_options=layer_options(cfg),
        init_state=cfg.init_state,
        feed=cfg.feed,
    )


class GenerateTask(Task):
    """The ``generate`` task for the trainer (see ``rnnkit.training.task.Task``)."""

    kind = "generate"
    unit = "tokens"
    loss_label = "nats per token"

    def __init__(
        self,
        model_cfg: GenerateModelConfig,
        data_cfg: GenerateDataConfig,
        rows: list[tuple[str, str]],
        *,
        batch_size: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
        vocab: TokenVocab | None = None,
        conditions: list[str] | None = None,
    ) -> None:
        self.model_cfg, self.data_cfg = model_cfg, data_cfg
        self.batch_size, self.seed = batch_size, seed
        self.device = torch.device(device)
        self.splits = split_rows(
            rows, data_cfg.val_fraction, data_cfg.test_fraction, data_cfg.split_seed
        )
        train = self.splits["train"]
        self.vocab = vocab or TokenVocab.build([t for _, t in train], data_cfg.target_level)
        self.conditions = conditions or sorted({c for c, _ in train})
        self.train_items = self.encode(train)
        seed = self.seed
        self._plan = BatchPlan(
            [len(t) for _, t in self.train_items],
            batch_size,
            lambda epoch: python_shuffle(seed * 100_003 + epoch),
        )

    def encode(self, rows: list[tuple[str, str]]) -> list[tuple[int, list[int]]]:
        """Rows as (class id, ``<bos>`` + target ids + ``<eos>``); unseen conditions dropped."""
        known = {c: i for i, c in enumerate(self.conditions)}
        return [(known[c], self.vocab.encode(t, bos=True, eos=True)) for c, t in rows if c in known]

    # -- the Task -----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return build_generator(len(self.vocab), len(self.conditions), self.model_cfg)

    def shard(self, rank: int, world_size: int) -> None:
        self._plan.shard(rank, world_size)

    def is_stand_in(self, step: int) -> bool:
        return self._plan.is_stand_in(step)

    def train_batch(self, step: int) -> tuple[Tensor, Tensor]:
        items = [self.train_items[i] for i in self._plan(step)]
        return collate_rows(items)

    def batch_loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, int]:
        conditions, targets = (t.to(self.device) for t in batch)
        logits = model(conditions, targets[:, :-1])
        gold = targets[:, 1:]
        loss = F.cross_entropy(logits.flatten(0, 1).float(), gold.flatten(), ignore_index=0)
        return loss, int((gold != 0).sum())

    def evaluate(self, model: nn.Module, split: str, limit: int | None = None) -> dict:
        items = self.encode(self.splits[split])
        if limit is not None:
            kept, tokens = [], 0
            for item in items:
                if tokens >= limit:
                    break
                kept.append(item)
                tokens += len(item[1]) - 1
            items = kept
        loss = sequence_loss(model, items, self.batch_size, self.device)
        return {
            "loss": loss,
            "unigram_loss": unigram_loss(self.train_items, items),
            "items": len(items),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": asdict(self.model_cfg),
            "data": asdict(self.data_cfg),
            "vocab": self.vocab.to_json(),
            "conditions": self.conditions,
            "batch_size": self.batch_size,
        }


def collate_rows(items: list[tuple[int, list[int]]]) -> tuple[Tensor, Tensor]:
    """Class ids ``(B,)`` and the padded targets ``(B, T)`` (``pad_batch``) of encoded rows."""
    targets, _ = pad_batch([t for _, t in items])
    return torch.tensor([c for c, _ in items], dtype=torch.long), targets


def sequence_loss(
    model: nn.Module, items: list[tuple[int, list[int]]], batch_size: int, device
) -> float:
    """Mean cross-entropy per target token (``<eos>`` included), teacher-forced."""
    was_training = model.training
    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            conditions, targets = (
                t.to(device) for t in collate_rows(items[start : start + batch_size])
            )
            logits = model(conditions, targets[:, :-1])
            gold = targets[:, 1:]
            total += F.cross_entropy(
                logits.flatten(0, 1).float(), gold.flatten(), ignore_index=0, reduction="sum"
            ).item()
            count += int((gold != 0).sum())
    model.train(was_training)
    return total / max(count, 1)


def unigram_loss(train: list[tuple[int, list[int]]], scored: list[tuple[int, list[int]]]) -> float:
    """Loss (nats per token) on ``scored``'s target tokens (after ``<bos>``) of the add-one
    smoothed unigram model of the training targets (``rnnkit.text.unigram``; V: the tokens
    seen in either): the trivial baseline."""

    def targets(items: list[tuple[int, list[int]]]) -> Tensor:
        return torch.tensor([t for _, ids in items for t in ids[1:]], dtype=torch.long)

    return unigram_cross_entropy(targets(train), targets(scored))
