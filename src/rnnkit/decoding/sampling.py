"""Choosing the next token from logits: argmax, temperature, top-k and nucleus (top-p)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(kw_only=True)
class SamplingConfig:
    """How to pick each next token."""

    temperature: float = 1.0
    """Divide the logits by this: below 1 is more conservative, above 1 more adventurous."""
    top_k: int | None = None
    """Sample only among the k most likely tokens."""
    top_p: float | None = None
    """Sample only among the most likely tokens whose probabilities add up to p (nucleus)."""
    argmax: bool = False
    """Always take the most likely token (greedy); ignores temperature, top-k and top-p."""
    seed: int = 0
    """Random seed: the same seed, model and prime give the same text."""

    def __post_init__(self) -> None:
        # NaN passes every comparison below (and then turns the probabilities into NaN)
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"--temperature must be a positive number, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"--top-k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"--top-p must lie in (0, 1], got {self.top_p}")
        if not 0 <= self.seed <= 2**63 - 1:  # the range torch.Generator takes
            raise ValueError(f"--seed must lie in [0, 2**63 - 1], got {self.seed}")


def pick_next(logits: Tensor, cfg: SamplingConfig, generator: torch.Generator | None) -> Tensor:
    """Next token ids ``(B,)`` from logits ``(B, V)``."""
    if cfg.argmax:
        return logits.argmax(-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.size(-1):
        kth = logits.topk(cfg.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1:
        sorted_logits, order = logits.sort(-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens before it already cover p (the first always stays)
        drop = (probs.cumsum(-1) - probs) >= cfg.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
