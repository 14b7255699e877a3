"""Classify whole sequences (many-to-one) or tag every step (aligned many-to-many).

The model is ``ManyToOne`` (classify) or ``ManyToMany`` (tag) over token ids (text) or
standardised features (numbers, audio). Each optimiser step takes a batch of examples of similar
length (less padding) from a shuffled pass over the training split; ``lengths`` keep padding out
of the answer. The loss is the cross-entropy; evaluation adds accuracy and macro-F1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.architectures import ManyToMany, ManyToOne
from rnnkit.architectures.many_to_one import POOLINGS, Pooling
from rnnkit.audio import AudioConfig
from rnnkit.comma_lists import split_commas
from rnnkit.datasets.labelled_formats import Columns, Labelled
from rnnkit.datasets.padding import pad_batch
from rnnkit.datasets.registry import stored_data_path
from rnnkit.tasks.classify.inputs import InputEncoder, LabelEncoder
from rnnkit.tasks.classify.metrics import classification_report
from rnnkit.tasks.classify.transfer import TransferConfig, init_from_lm
from rnnkit.tasks.network_config import LayerOptions, check_network, layer_options
from rnnkit.tasks.regularization import Regularizer, TokenRegularisers, check_regularization
from rnnkit.text.tokens import LevelChoice, choose_level
from rnnkit.training.batching import BatchPlan, torch_shuffle
from rnnkit.training.config import check_types
from rnnkit.training.schedules import (
    discriminative_scales,
    layer_groups,
    set_trainable,
    slanted_triangular,
    trainable_from,
)
from rnnkit.training.task import Task


@dataclass(kw_only=True)
class ClassifyModelConfig(TokenRegularisers, LayerOptions):
    """The network: [embedding] -> recurrent layers -> pooling (classify) -> linear head."""

    cell: str = "gru"
    """Recurrent cell: {cells}."""
    hidden_size: int = 128
    """Hidden units per layer and direction."""
    num_layers: int = 1
    """Stacked recurrent layers."""
    bidirectional: bool = True
    """Read each sequence both ways and join the two directions."""
    dropout: float = 0.5
    """Dropout on the embedding, between layers and before the head, in training."""
    embedding_size: int = 128
    """Width of the token embedding (text input)."""
    pooling: Pooling = "attention"
    """How a sequence becomes one vector (classify): last, mean, max or attention."""

    def __post_init__(self) -> None:
        check_network(self, ("hidden_size", "num_layers", "embedding_size"))
        check_regularization(self)
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"--pooling must be one of {', '.join(POOLINGS)}; got {self.pooling!r}"
            )


@dataclass(kw_only=True)
class ClassifyDataConfig:
    """Where the labelled sequences are and how to read and split them."""

    data: str
    """A labelled file (.csv .tsv .jsonl .conll .npz .ts), a folder of CLASS/*.wav, or a data
    set (rotten-tomatoes, japanese-vowels)."""
    val_data: str | None = None
    """A separate validation file (default: carved from --data by --split-fractions)."""
    test_data: str | None = None
    """A separate test file (default: carved from --data by --split-fractions)."""
    text_col: str = "text"
    """Column of the text (or, for tagging, of the token lists)."""
    label_col: str = "label"
    """Column of the label (or, for tagging, of the per-token label lists)."""
    sequence_col: str | None = None
    """Numeric long format: the column naming the sequence each row (time step) belongs to."""
    time_col: str | None = None
    """Numeric long format: a column to order the rows of a sequence by."""
    feature_cols: str | None = None
    """Numeric long format: comma-separated feature columns (default: all others)."""
    tokens: Literal["auto", "word", "char"] = "auto"
    """Text as words (lower-cased, punctuation apart) or as characters; auto: chosen from the
    training data (characters for short strings or many unknown words), printed and stored."""
    max_vocab: int | None = 20000
    """Keep at most this many tokens (the most frequent; the rest read as <unk>)."""
    min_count: int = 1
    """Drop tokens seen fewer times than this in training."""
    max_length: int = 400
    """Cut sequences to this many steps (tokens or frames)."""
    split_fractions: str = "0.8,0.1,0.1"
    """Train, validation and test fractions when the data has no split of its own."""
    split_seed: int = 0
    """Seed of that split (fixed, so evaluation later sees the same test set)."""

    def __post_init__(self) -> None:
        check_types(self)
        self.data = stored_data_path(self.data)
        self.val_data = stored_data_path(self.val_data)
        self.test_data = stored_data_path(self.test_data)
        if self.max_length < 1:
            raise ValueError(f"--max-length must be >= 1, got {self.max_length}")
        if self.tokens not in ("auto", "word", "char"):
            raise ValueError(f"--tokens must be auto, word or char, got {self.tokens!r}")
        try:
            parts = [float(p) for p in self.split_fractions.split(",")]
        except ValueError:
            parts = []
        if len(parts) != 3 or min(parts) < 0 or parts[0] <= 0 or abs(sum(parts) - 1) > 1e-6:
            raise ValueError(
                f"--split-fractions must be three fractions adding up to 1; "
                f"got {self.split_fractions!r}"
            )

    @staticmethod
    def upgrade(values: dict) -> dict:
        """A stored config of an older run: ``split`` is now ``split_fractions`` (``--split``
        names the part a run verb scores)."""
        if "split" in values:
            values = {**values, "split_fractions": values["split"]}
            del values["split"]
        return values

    @property
    def fractions(self) -> tuple[float, float, float]:
        a, b, c = (float(p) for p in self.split_fractions.split(","))
        return a, b, c

    @property
    def columns(self) -> Columns:
        features = tuple(split_commas(self.feature_cols or ""))
        return Columns(
            text_col=self.text_col,
            label_col=self.label_col,
            sequence_col=self.sequence_col,
            time_col=self.time_col,
            feature_cols=features,
        )


def resolve_tokens(
    data_cfg: ClassifyDataConfig, splits: dict[str, Labelled]
) -> tuple[ClassifyDataConfig, LevelChoice | None]:
    """``data_cfg`` with ``--tokens auto`` replaced by the level ``choose_level`` picks from the
    training and validation texts (unchanged for other input or a level given)."""
    train = splits["train"]
    if data_cfg.tokens != "auto" or train.kind != "text":
        return data_cfg, None
    val = splits.get("val", train)
    choice = choose_level(
        list(train.inputs),
        list(val.inputs),
        max_size=data_cfg.max_vocab,
        min_count=data_cfg.min_count,
    )
    return replace(data_cfg, tokens=choice.level), choice


def build_classifier(
    model_cfg: ClassifyModelConfig, encoder: InputEncoder, n_classes: int, aligned: bool
) -> nn.Module:
    """The model a run's configs describe (``ManyToMany`` when tagging)."""
    common = dict(
        vocab_size=encoder.vocab_size,
        embedding_size=model_cfg.embedding_size,
        input_size=encoder.feature_size,
        cell=model_cfg.cell,
        layer_options=layer_options(model_cfg),
        hidden_size=model_cfg.hidden_size,
        num_layers=model_cfg.num_layers,
        dropout=model_cfg.dropout,
        bidirectional=model_cfg.bidirectional,
    )
    if aligned:
        return ManyToMany(n_classes, **common)
    return ManyToOne(n_classes, pooling=model_cfg.pooling, **common)


def logits_of(model: nn.Module, x: Tensor, lengths: Tensor) -> Tensor:
    out = model(x, lengths=lengths)
    return out[0] if isinstance(out, tuple) else out  # ManyToMany also returns its state


class ClassifyTask(Task):
    """The ``Task`` (see ``rnnkit.training.trainer``) of classifying or tagging sequences.

    The best checkpoint is the one of highest validation accuracy (``monitor``): the loss keeps
    falling on confident right answers after the accuracy has peaked, and the other way round.
    """

    monitor = ("accuracy", "max")
    loss_label = "cross-entropy (nats)"
    # with no budget given: train until 8 evaluations (2,000 steps) bring no better validation
    # accuracy, at most 20,000 steps. A fixed 5,000 steps left a character model of 26 k words
    # still learning and word models of 2-10 k texts long past their best; chosen on validation
    # (``benchmarks/classify_defaults.py --sweep``, docs/classification.md)
    default_budget: ClassVar[dict[str, int]] = {"max_steps": 20000, "patience": 8}

    @property
    def unit(self) -> str:
        """What ``batch_loss`` counts: a tagger's tokens, a classifier's examples."""
        return "tokens" if self.aligned else "examples"

    def __init__(
        self,
        model_cfg: ClassifyModelConfig,
        data_cfg: ClassifyDataConfig,
        splits: dict[str, Labelled],
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        encoder: InputEncoder | None = None,
        labels: LabelEncoder | None = None,
        audio: AudioConfig | None = None,
        sizes: dict[str, int] | None = None,
        transfer: TransferConfig | None = None,
        lr: float = 0.0,
    ) -> None:
        """``splits``: the examples to encode (train, and what is scored); ``sizes``: the number
        of examples in every split, for config.json, those not given here too (default: of
        ``splits``); ``transfer``: the language model to start from and the fine-tuning schedule;
        ``lr``: the peak learning rate (``--lr``), for the slanted schedule."""
        train = splits["train"]
        self.kind = "tag" if train.aligned else "classify"
        self.model_cfg, self.data_cfg = model_cfg, data_cfg
        self.aligned, self.input_kind = train.aligned, train.kind
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.audio = audio or AudioConfig()
        self.transfer, self.peak_lr = transfer or TransferConfig(), lr
        self._groups: list = []
        self.regularizer = Regularizer()  # build_model sets the model's own
        self.tokens_choice: LevelChoice | None = None
        """What ``--tokens auto`` measured and chose (None: a level was given, or stored)."""
        if encoder is None:
            data_cfg, self.tokens_choice = resolve_tokens(data_cfg, splits)
            self.data_cfg = data_cfg
        self.encoder = encoder or InputEncoder.fit(
            train.kind,
            train.inputs,
            level=data_cfg.tokens,
            max_vocab=data_cfg.max_vocab,
            min_count=data_cfg.min_count,
            max_length=data_cfg.max_length,
        )
        self.labels = labels or LabelEncoder.fit(train.labels, train.aligned)
        self.data = {name: self.encode(split) for name, split in splits.items()}
        self.sizes = sizes or {name: len(split) for name, split in splits.items()}
        seed = self.seed
        self._plan = BatchPlan(
            [len(x) for x in self.data["train"][0]],
            batch_size,
            lambda epoch: torch_shuffle(seed * 1_000_003 + epoch),
        )

    def encode(self, split: Labelled) -> tuple[list[Tensor], list]:
        """A split's inputs as tensors and its labels as ids (an unseen label is an error)."""
        if split.kind != self.input_kind and {split.kind, self.input_kind} != {"numeric", "audio"}:
            raise ValueError(
                f"{split.source}: {split.kind} input, but the model reads {self.input_kind}"
            )
        xs = [self.encoder.encode(item) for item in split.inputs]
        ys = self.labels.encode_all(split.labels, self.aligned)
        if self.aligned:
            ys = [y[: len(x)] for x, y in zip(xs, ys)]
        return xs, ys

    # -- the Task ----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        model = build_classifier(
            self.model_cfg, self.encoder, len(self.labels.classes), self.aligned
        )
        if self.transfer.init_from is not None:
            copied = init_from_lm(
                model, self.model_cfg, self.encoder.vocab, self.transfer.init_from
            )
            print(
                f"--init-from {self.transfer.init_from}: embedding and recurrent layers copied; "
                f"{copied['known']} tokens mapped, {copied['new']} new (the mean row)",
                flush=True,
            )
        m = self.model_cfg
        self.regularizer = Regularizer(m.embedding_dropout, m.ar, m.tar)
        return self.regularizer.attach(model)

    def param_groups(self, model: nn.Module) -> list[dict] | None:
        """Layer groups with discriminative rates (``--lr-decay``), bottom to top."""
        if not self.transfer.active:
            return None
        self._groups = layer_groups(model)
        scales = discriminative_scales(len(self._groups), self.transfer.lr_decay)
        return [{"params": g, "lr_scale": s} for g, s in zip(self._groups, scales)]

    @property
    def unused_parameters(self) -> bool:  # type: ignore[override]
        """Gradual unfreezing leaves the frozen groups without gradients (see ``Task``)."""
        return self.transfer.unfreeze_every > 0

    def before_step(self, model: nn.Module, step: int, progress: float, lr: float) -> float:
        """Gradual unfreezing and the slanted triangular rate, when asked for."""
        t = self.transfer
        if t.unfreeze_every and self._groups:
            set_trainable(self._groups, trainable_from(step, len(self._groups), t.unfreeze_every))
        if t.schedule == "slanted":
            return self.peak_lr * slanted_triangular(progress, t.slanted_cut, t.slanted_ratio)
        return lr

    def shard(self, rank: int, world_size: int) -> None:
        self._plan.shard(rank, world_size)

    def is_stand_in(self, step: int) -> bool:
        return self._plan.is_stand_in(step)

    def train_batch(self, step: int):
        return self.batch("train", self._plan(step))

    def batch(self, split: str, indices: list[int]):
        xs, ys = self.data[split]
        x, lengths = pad_batch([xs[i] for i in indices])
        y = (
            pad_batch([ys[i] for i in indices], pad_value=-100)[0]  # -100: the loss ignores it
            if self.aligned
            else torch.tensor([ys[i] for i in indices])
        )
        return x.to(self.device), lengths, y.to(self.device)

    def batch_loss(self, model: nn.Module, batch) -> tuple[Tensor, int]:
        x, lengths, y = batch
        logits = logits_of(model, x, lengths)
        penalty = self.regularizer.penalty(lengths)  # AR/TAR (0 without them)
        if self.aligned:
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
            return loss + penalty, int(lengths.sum())
        return F.cross_entropy(logits, y) + penalty, len(y)

    def predictions(self, model: nn.Module, split: str) -> tuple[Tensor, Tensor, Tensor, float]:
        """True ids, predicted ids, probabilities, and the mean loss over a split."""
        xs, _ = self.data[split]
        order = sorted(range(len(xs)), key=lambda i: len(xs[i]))
        trues, probs, loss_sum, count = [], [], 0.0, 0
        for start in range(0, len(order), 256):
            x, lengths, y = self.batch(split, order[start : start + 256])
            logits = logits_of(model, x, lengths).float()
            if self.aligned:
                keep = y != -100
                logits, y = logits[keep], y[keep]
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            count += len(y)
            trues.append(y.cpu())
            probs.append(torch.softmax(logits, -1).cpu())
        true, prob = torch.cat(trues), torch.cat(probs)
        if not self.aligned:  # back to the split's order
            inverse = torch.empty(len(order), dtype=torch.long)
            inverse[torch.tensor(order)] = torch.arange(len(order))
            true, prob = true[inverse], prob[inverse]
        return true, prob.argmax(-1), prob, loss_sum / max(count, 1)

    def evaluate(self, model: nn.Module, split: str, limit: int | None = None) -> dict:
        true, pred, _, loss = self.predictions(model, split)
        report = classification_report(true, pred, self.labels.classes)
        return {"loss": loss, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "model": asdict(self.model_cfg),
            "data": asdict(self.data_cfg),
            "input": self.encoder.to_json(),
            "classes": self.labels.classes,
            "aligned": self.aligned,
            "input_kind": self.input_kind,
            "audio": asdict(self.audio),
            "batch_size": self.batch_size,
            "sizes": self.sizes,
            "transfer": asdict(self.transfer),
            **({"tokens_auto": self.tokens_choice.to_json()} if self.tokens_choice else {}),
        }
