"""Sequence to sequence: translate a source (characters or words) into a target, with attention.

The model is ``Seq2Seq`` (``rnnkit.architectures.seq2seq``). Data are ``source<TAB>target``
pairs (``rnnkit.tasks.seq2seq.data``), split by unique source; the vocabularies come from the
training split. Training minimises the cross-entropy of each target token given the source and
the previous target tokens, in batches of similar lengths. Evaluation reports that loss on a
held-out split and, from greedy decoding, the token error rate (the character error rate for
character targets, the phoneme error rate for phonemes) and the sequence error rate (the word
error rate in grapheme-to-phoneme), taking an output as right when it matches any reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.architectures.attention import AttentionKind
from rnnkit.architectures.seq2seq import Seq2Seq
from rnnkit.datasets.registry import stored_data_path
from rnnkit.decoding import decode
from rnnkit.tasks.network_config import LayerOptions, check_network, layer_options
from rnnkit.tasks.seq2seq.data import (
    PairBatch,
    batched,
    collate,
    encode_pairs,
    error_rates,
    sort_by_length,
    source_batch,
    split_by_source,
)
from rnnkit.text.tokens import TokenLevel, TokenVocab, tokenize
from rnnkit.training.batching import BatchPlan, python_shuffle
from rnnkit.training.config import check_types
from rnnkit.training.task import Task


@dataclass(kw_only=True)
class Seq2SeqModelConfig(LayerOptions):
    """The network: embeddings, encoder, attention, decoder; and teacher forcing in training."""

    cell: str = "lstm"
    """Recurrent cell of encoder and decoder: {cells}."""
    hidden_size: int = 256
    """Hidden units per layer (encoder, each direction, and decoder)."""
    embedding_size: int = 128
    """Width of the source and target token embeddings."""
    encoder_layers: int = 1
    """Stacked encoder layers."""
    decoder_layers: int = 1
    """Stacked decoder layers."""
    bidirectional: bool = True
    """Read the source in both directions."""
    attention: AttentionKind = "additive"
    """How the decoder scores source steps: additive (Bahdanau) or dot (Luong)."""
    dropout: float = 0.0
    """Dropout on embeddings, between layers and before the output layer, in training."""
    teacher_forcing: float = 1.0
    """Probability of feeding the true previous token in training (1: always)."""
    teacher_forcing_final: float | None = None
    """If set, the probability moves linearly to this over --teacher-forcing-steps."""
    teacher_forcing_steps: int = 10_000
    """Steps over which the teacher-forcing probability moves to its final value."""

    def __post_init__(self) -> None:
        check_network(
            self,
            (
                "hidden_size",
                "embedding_size",
                "encoder_layers",
                "decoder_layers",
                "teacher_forcing_steps",
            ),
        )
        if self.attention not in ("additive", "dot"):
            raise ValueError(f"--attention must be additive or dot; got {self.attention!r}")
        for flag, p in (
            ("--teacher-forcing", self.teacher_forcing),
            ("--teacher-forcing-final", self.teacher_forcing_final),
        ):
            if p is not None and not 0 <= p <= 1:
                raise ValueError(f"{flag} must lie in [0, 1], got {p}")

    def teacher_forcing_at(self, step: int) -> float:
        """The teacher-forcing probability at training step ``step``."""
        if self.teacher_forcing_final is None:
            return self.teacher_forcing
        progress = min(1.0, step / self.teacher_forcing_steps)
        return self.teacher_forcing + (self.teacher_forcing_final - self.teacher_forcing) * progress


@dataclass(kw_only=True)
class Seq2SeqDataConfig:
    """The pairs, how they split into tokens, and how they are divided."""

    data: str
    """A source<TAB>target file (UTF-8, one pair per line), or a data-set name (cmudict)."""
    source_level: TokenLevel = "char"
    """Source tokens: char, word, or space (already space-separated tokens)."""
    target_level: TokenLevel = "char"
    """Target tokens: char, word, or space (cmudict's phonemes: space)."""
    val_fraction: float = 0.05
    """Share of the distinct sources held out for validation."""
    test_fraction: float = 0.05
    """Share of the distinct sources held out for the test split."""
    split_seed: int = 0
    """Seed of the shuffle that assigns sources to train, val and test."""
    max_vocab: int | None = None
    """Keep at most this many tokens per side, specials included (None: all)."""

    def __post_init__(self) -> None:
        check_types(self)
        self.data = stored_data_path(self.data)
        for flag, level in (
            ("--source-level", self.source_level),
            ("--target-level", self.target_level),
        ):
            if level not in ("char", "word", "space"):
                raise ValueError(f"{flag} must be char, word or space; got {level!r}")
        for flag, v in (
            ("--val-fraction", self.val_fraction),
            ("--test-fraction", self.test_fraction),
        ):
            if not 0 < v < 0.5:
                raise ValueError(f"{flag} must lie in (0, 0.5), got {v}")


def build_seq2seq(source_vocab: int, target_vocab: int, cfg: Seq2SeqModelConfig) -> Seq2Seq:
    return Seq2Seq(
        source_vocab,
        target_vocab,
        embedding_size=cfg.embedding_size,
        hidden_size=cfg.hidden_size,
        encoder_layers=cfg.encoder_layers,
        decoder_layers=cfg.decoder_layers,
        bidirectional=cfg.bidirectional,
        cell=cfg.cell,
        layer_options=layer_options(cfg),
        attention=cfg.attention,
        dropout=cfg.dropout,
    )


class Seq2SeqTask(Task):
    """The ``seq2seq`` task for the trainer (see ``rnnkit.training.task.Task``)."""

    kind = "seq2seq"
    unit = "target tokens"
    loss_label = "nats per target token"

    def __init__(
        self,
        model_cfg: Seq2SeqModelConfig,
        data_cfg: Seq2SeqDataConfig,
        pairs: list[tuple[str, str]],
        *,
        batch_size: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
        vocabs: tuple[TokenVocab, TokenVocab] | None = None,
    ) -> None:
        self.model_cfg, self.data_cfg = model_cfg, data_cfg
        self.batch_size, self.seed = batch_size, seed
        self.device = torch.device(device)
        self.splits = split_by_source(
            pairs, data_cfg.val_fraction, data_cfg.test_fraction, data_cfg.split_seed
        )
        if vocabs is None:
            train = self.splits["train"]
            vocabs = (
                TokenVocab.build(train, data_cfg.source_level, max_size=data_cfg.max_vocab),
                TokenVocab.build(
                    [t for ts in train.values() for t in ts],
                    data_cfg.target_level,
                    max_size=data_cfg.max_vocab,
                ),
            )
        self.source_vocab, self.target_vocab = vocabs
        self.train_items = encode_pairs(self.splits["train"], *vocabs)
        seed = self.seed
        self._plan = BatchPlan(
            [len(s) + len(t) for s, t in self.train_items],
            batch_size,
            lambda epoch: python_shuffle(seed * 100_003 + epoch),
        )

    # -- the Task -----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return build_seq2seq(len(self.source_vocab), len(self.target_vocab), self.model_cfg)

    def shard(self, rank: int, world_size: int) -> None:
        self._plan.shard(rank, world_size)

    def is_stand_in(self, step: int) -> bool:
        return self._plan.is_stand_in(step)

    def train_batch(self, step: int) -> PairBatch:
        batch = collate([self.train_items[i] for i in self._plan(step)])
        batch.teacher_forcing = self.model_cfg.teacher_forcing_at(step)
        return batch

    def batch_loss(self, model: nn.Module, batch: PairBatch) -> tuple[Tensor, int]:
        logits, _ = model(
            batch.source.to(self.device),
            batch.source_lengths.to(self.device),
            batch.target_in.to(self.device),
            teacher_forcing=batch.teacher_forcing,
        )
        target = batch.target_out.to(self.device)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=0)
        return loss, int((target != 0).sum())

    def evaluate(self, model: nn.Module, split: str, limit: int | None = None) -> dict:
        refs = self.splits[split]
        if limit is not None:
            kept, tokens = {}, 0
            for source, targets in refs.items():
                if tokens >= limit:
                    break
                kept[source] = targets
                tokens += len(self.target_vocab.encode(targets[0])) + 1
            refs = kept
        return evaluate_seq2seq(
            model, refs, self.source_vocab, self.target_vocab, self.batch_size, self.device
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": asdict(self.model_cfg),
            "data": asdict(self.data_cfg),
            "source_vocab": self.source_vocab.to_json(),
            "target_vocab": self.target_vocab.to_json(),
            "batch_size": self.batch_size,
        }


def translate(
    model: Seq2Seq,
    sources: list[str],
    source_vocab: TokenVocab,
    target_vocab: TokenVocab,
    *,
    beam: int = 1,
    batch_size: int = 128,
    length_penalty: float = 1.0,
    max_length: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[list[str], list[Tensor]]:
    """Decode source texts; return the output texts and each one's attention ``(T_out, S)``."""
    order = sort_by_length(sources)
    texts: list[str] = [""] * len(sources)
    weights: list[Tensor] = [torch.empty(0)] * len(sources)
    for chunk in batched(order, batch_size):
        source, lengths = source_batch([sources[i] for i in chunk], source_vocab)
        decoded = decode(
            model,
            source.to(device),
            lengths.to(device),
            beam=beam,
            length_penalty=length_penalty,
            max_length=max_length,
        )
        for i, ids, w in zip(chunk, decoded.tokens, decoded.attention):
            texts[i] = target_vocab.decode(ids)
            weights[i] = w
    return texts, weights


def evaluate_seq2seq(
    model: nn.Module,
    refs: dict[str, list[str]],
    source_vocab: TokenVocab,
    target_vocab: TokenVocab,
    batch_size: int,
    device: torch.device | str,
    *,
    beam: int = 1,
    length_penalty: float = 1.0,
) -> dict[str, float]:
    """Teacher-forced loss, and the error rates of decoded outputs, on ``{source: refs}``."""
    was_training = model.training
    model.eval()
    items = encode_pairs(refs, source_vocab, target_vocab)
    total = count = 0.0
    with torch.no_grad():
        for chunk in batched(items, batch_size):
            b = collate(chunk)
            logits, _ = model(
                b.source.to(device), b.source_lengths.to(device), b.target_in.to(device)
            )
            target = b.target_out.to(device)
            total += F.cross_entropy(
                logits.flatten(0, 1).float(), target.flatten(), ignore_index=0, reduction="sum"
            ).item()
            count += int((target != 0).sum())
        sources = list(refs)
        outputs, _ = translate(
            model,  # type: ignore[arg-type]
            sources,
            source_vocab,
            target_vocab,
            beam=beam,
            batch_size=batch_size,
            length_penalty=length_penalty,
            device=device,
        )
    model.train(was_training)
    level = target_vocab.level
    rates = error_rates(
        [tokenize(o, level) for o in outputs],
        [[tokenize(r, level) for r in refs[s]] for s in sources],
    )
    return {"loss": total / max(count, 1), **rates, "sequences": len(sources)}
