"""The language model's run verbs as the command line calls them: options and printed form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rnnkit.decoding import SamplingConfig


@dataclass(kw_only=True)
class EvaluateOptions:
    """What ``rnnkit evaluate`` scores for a language-model run."""

    data: str | None = None
    """Score this text (a file, folder, glob or data-set name) instead of the run's own split."""
    split: Literal["train", "val", "test"] = "test"
    """Which part of the run's own corpus to score, cut as in training."""


def show_evaluate(m: dict, options: EvaluateOptions) -> str:
    return "\n".join(
        [
            f"{'data':<22}{m['data']}",
            f"{'checkpoint':<22}{m['checkpoint']}",
            f"{'tokens scored':<22}{m['tokens']:,}",
            f"{'':<22}{'nats/token':>12}{'bits/token':>12}",
            f"{'model':<22}{m['loss']:>12.4f}{m['bpc']:>12.4f}",
            f"{'unigram baseline':<22}{m['unigram_loss']:>12.4f}{m['unigram_bpc']:>12.4f}",
        ]
    )


@dataclass(kw_only=True)
class SampleOptions:
    """What ``rnnkit sample`` generates from a language-model run."""

    prime: str = ""
    """Text to start from (default: a newline). A word model (--tokenizer word) reads it as
    words, starts after <unk> without it, and writes its words joined with spaces."""
    length: int = 500
    """Tokens to generate."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
