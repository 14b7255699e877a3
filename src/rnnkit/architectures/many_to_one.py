"""Many-to-one: a whole sequence in, one answer out (a class, or a value).

``input -> [embedding | as is] -> recurrent layers -> pool over the valid steps -> dropout ->
linear head``. The pooling reads the sequence's summary:

- ``last``: the output at each sequence's last valid step (for a reverse direction, its output
  at step 0, which has read the whole sequence); the final hidden state of the top layer;
- ``mean`` / ``max``: the mean or maximum of the outputs over the valid steps;
- ``attention``: a learned weighted mean, ``a_t = softmax_t(v . tanh(W y_t + b))`` over the
  valid steps (Bahdanau et al. 2015's scoring, used for pooling as in Yang et al. 2016).

Padding never reaches the answer: with ``lengths``, the layers stop at each sequence's end and
every pooling masks the steps past it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rnnkit.architectures.many_to_many import input_layer
from rnnkit.layers.build import CellSpec, make_layer
from rnnkit.state import lengths_mask

Pooling = Literal["last", "mean", "max", "attention"]
POOLINGS = ("last", "mean", "max", "attention")


def valid_mask(lengths: Tensor | None, batch: int, steps: int, device) -> Tensor:
    """``(B, T)`` booleans, True on each sequence's valid steps."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return lengths_mask(lengths, steps, device)


class AttentionPooling(nn.Module):
    """Weighted mean over steps with weights ``softmax_t(v . tanh(W y_t + b))``, masked."""

    def __init__(self, size: int, attention_size: int | None = None) -> None:
        super().__init__()
        attention_size = attention_size or size
        self.proj = nn.Linear(size, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)

    def forward(self, y: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:  # y (B, T, F)
        scores = self.score(torch.tanh(self.proj(y))).squeeze(-1)  # (B, T)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return torch.einsum("bt,btf->bf", weights, y), weights


def pool(
    y: Tensor, lengths: Tensor | None, how: Pooling, *, directions: int = 1, attention=None
) -> Tensor:
    """Pool ``(B, T, D*H)`` outputs over each sequence's valid steps to ``(B, D*H)``."""
    batch, steps, _ = y.shape
    if how == "last":
        last = (
            lengths.to(y.device) - 1
            if lengths is not None
            else torch.full((batch,), steps - 1, device=y.device)
        )
        forward = y[torch.arange(batch, device=y.device), last]  # (B, D*H)
        if directions == 1:
            return forward
        hidden = y.size(-1) // 2
        return torch.cat([forward[:, :hidden], y[:, 0, hidden:]], dim=-1)
    mask = valid_mask(lengths, batch, steps, y.device)
    if how == "mean":
        total = (y * mask[..., None]).sum(1)
        return total / mask.sum(1, keepdim=True).clamp(min=1)
    if how == "max":
        return y.masked_fill(~mask[..., None], float("-inf")).amax(1)
    if how == "attention":
        return attention(y, mask)[0]
    raise ValueError(f"--pooling must be one of {', '.join(POOLINGS)}; got {how!r}")


class ManyToOne(nn.Module):
    """A sequence in, one output: class logits (``output_size`` classes) or values.

    Args:
        output_size: the number of classes (or of values to regress).
        vocab_size: if given, inputs are token ids ``(B, T)`` embedded to ``embedding_size``;
            otherwise inputs are features ``(B, T, input_size)``.
        embedding_size: the embedding width (token input only).
        input_size: features per step (feature input only).
        cell: ``"rnn"``, ``"rnn_relu"``, ``"lstm"``, ``"gru"`` or a custom cell class.
        layer_options: ``make_layer``'s options for the recurrent layers (``recurrent_dropout``,
            ``weight_drop``, ``zoneout``, ``init``, ``max_dependency``).
        hidden_size, num_layers, bidirectional: the recurrent layers.
        dropout: between layers, on the embedding and on the pooled summary.
        pooling: ``"last"``, ``"mean"``, ``"max"`` or ``"attention"`` (module docstring).
        padding_idx: the padding token id (token input only; its embedding stays zero).

    Shapes: ``(B, T)`` ids or ``(B, T, I)`` features in, with optional ``lengths`` ``(B,)``;
    ``(B, output_size)`` out.

    Example::

        >>> clf = ManyToOne(2, vocab_size=100, embedding_size=16, hidden_size=32,
        ...                 bidirectional=True, pooling="max")
        >>> clf(torch.randint(1, 100, (4, 9)), lengths=torch.tensor([9, 5, 3, 1])).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        output_size: int,
        *,
        vocab_size: int | None = None,
        embedding_size: int = 64,
        input_size: int | None = None,
        cell: CellSpec = "lstm",
        layer_options: Mapping[str, Any] | None = None,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        pooling: Pooling = "last",
        padding_idx: int | None = 0,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"--pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.pooling = pooling
        self.directions = 2 if bidirectional else 1
        self.embedding, rnn_in = input_layer(vocab_size, embedding_size, input_size, padding_idx)
        self.rnn = make_layer(
            cell,
            rnn_in,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            **(layer_options or {}),
        )
        width = hidden_size * self.directions
        self.attention = AttentionPooling(width) if pooling == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, output_size)

    def _outputs(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        if self.embedding is not None:
            x = self.dropout(self.embedding(x))  # (B, T, E)
        return self.rnn(x, lengths=lengths)[0]  # (B, T, D*H)

    def summarize(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The pooled ``(B, D*H)`` summary of each sequence, before the head."""
        y = self._outputs(x, lengths)
        return pool(y, lengths, self.pooling, directions=self.directions, attention=self.attention)

    def attention_weights(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, T)`` attention-pooling weights (zero on padding) of the outputs that
        ``summarize`` pools; attention pooling only."""
        if self.attention is None:
            raise ValueError(f"this model pools with {self.pooling!r}, not attention")
        y = self._outputs(x, lengths)
        return self.attention(y, valid_mask(lengths, y.size(0), y.size(1), y.device))[1]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.dropout(self.summarize(x, lengths)))  # (B, output_size)
