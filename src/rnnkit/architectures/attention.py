"""Attention over a padded source: additive (Bahdanau) and dot-product (Luong) scores.

A decoder state ``q`` (the query) scores every encoder output ``k_s`` (the keys); a softmax over
the valid source steps turns the scores into weights ``a_s``, and the context is ``sum_s a_s k_s``.

- ``"additive"`` (Bahdanau, Cho & Bengio 2015, appendix A.1.2):
  ``score(q, k) = v^T tanh(W_q q + W_k k)``;
- ``"dot"`` (Luong, Pham & Manning 2015, section 3.1, the "general" form):
  ``score(q, k) = q^T W_k k / sqrt(H)``; ``W_k`` lets the keys (say, a bidirectional encoder's
  ``2H`` outputs) meet a query of another size.

The key projection depends on the source only, so ``prepare`` computes it once per source and
every decoding step reuses it. Padded source steps get a weight of exactly zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from rnnkit.state import lengths_mask

AttentionKind = Literal["additive", "dot"]


@dataclass
class Memory:
    """An encoded source, ready to be attended to."""

    values: Tensor
    """The encoder outputs, ``(B, S, K)``."""
    keys: Tensor
    """Their projection for scoring, ``(B, S, A)``."""
    mask: Tensor
    """True at the valid (not padded) source steps, ``(B, S)``."""

    def index_select(self, index: Tensor) -> Memory:
        """The memory of rows ``index`` (to expand a batch into beams, or reorder them)."""
        return Memory(self.values[index], self.keys[index], self.mask[index])


class Attention(nn.Module):
    """Score a query against a source's keys and return the context and the weights.

    Args:
        query_size: size of the decoder state, Q.
        key_size: size of an encoder output, K.
        kind: ``"additive"`` or ``"dot"`` (see the module docstring).
        attention_size: width of the additive score's hidden layer (default ``query_size``).

    Shapes: query ``(B, T, Q)`` (T decoder steps at once) or ``(B, Q)``; returns context
    ``(B, T, K)`` and weights ``(B, T, S)`` (without the T axis for a ``(B, Q)`` query).

    Example::

        >>> attn = Attention(8, 12, kind="additive")
        >>> memory = attn.prepare(torch.randn(2, 5, 12), torch.tensor([5, 3]))
        >>> context, weights = attn(torch.randn(2, 4, 8), memory)
        >>> weights[1, :, 3:].abs().sum().item(), weights.sum(-1)[0, 0].item()
        (0.0, 1.0)
    """

    def __init__(
        self,
        query_size: int,
        key_size: int,
        *,
        kind: AttentionKind = "additive",
        attention_size: int | None = None,
    ) -> None:
        super().__init__()
        if kind not in ("additive", "dot"):
            raise ValueError(f"--attention must be additive or dot, got {kind!r}")
        self.kind = kind
        if kind == "additive":
            size = attention_size or query_size
            self.key_proj = nn.Linear(key_size, size, bias=True)
            self.query_proj: nn.Module | None = nn.Linear(query_size, size, bias=False)
            self.v = nn.Linear(size, 1, bias=False)
        else:
            self.key_proj = nn.Linear(key_size, query_size, bias=False)
            self.query_proj = None
            self.scale = 1.0 / math.sqrt(query_size)

    def prepare(self, values: Tensor, lengths: Tensor) -> Memory:
        """Project the keys of encoder outputs ``(B, S, K)`` with valid ``lengths`` ``(B,)``."""
        mask = lengths_mask(lengths, values.size(1), values.device)  # (B, S)
        return Memory(values, self.key_proj(values), mask)

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        single = query.dim() == 2
        if single:
            query = query.unsqueeze(1)  # (B, 1, Q)
        if self.kind == "additive":
            q = self.query_proj(query)  # type: ignore[misc]  # (B, T, A)
            hidden = torch.tanh(q.unsqueeze(2) + memory.keys.unsqueeze(1))  # (B, T, S, A)
            scores = self.v(hidden).squeeze(-1)  # (B, T, S)
        else:
            scores = torch.bmm(query, memory.keys.transpose(1, 2)) * self.scale  # (B, T, S)
        scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).to(memory.values.dtype)  # (B, T, S)
        context = torch.bmm(weights, memory.values)  # (B, T, K)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights
