"""Many-to-many, aligned: one output per input step (tagging, language modelling).

``input -> [embedding | as is] -> recurrent layers -> dropout -> linear head``, one prediction
per step. A character language model is the unidirectional case with an embedding in and a
vocabulary out; a tagger may be bidirectional. The recurrent part is any rnnkit layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from rnnkit.layers.build import CellSpec, make_layer
from rnnkit.state import State


def input_layer(
    vocab_size: int | None,
    embedding_size: int,
    input_size: int | None,
    padding_idx: int | None = None,
) -> tuple[nn.Embedding | None, int]:
    """What reads the input before the recurrent layers: an embedding for token ids
    (``vocab_size``), or nothing for features (``input_size``); and the width it hands on."""
    if (vocab_size is None) == (input_size is None):
        raise ValueError("give exactly one of vocab_size (token input) or input_size")
    if vocab_size is not None:
        return nn.Embedding(vocab_size, embedding_size, padding_idx=padding_idx), embedding_size
    return None, input_size  # type: ignore[return-value]


class ManyToMany(nn.Module):
    """One output per input step.

    Args:
        output_size: classes (or values) per step; the vocabulary size for a language model.
        vocab_size: if given, inputs are token ids ``(B, T)`` embedded to ``embedding_size``;
            otherwise inputs are features ``(B, T, input_size)``.
        embedding_size: the embedding width (token input only).
        input_size: features per step (feature input only).
        cell, hidden_size, num_layers, dropout, bidirectional: the recurrent layers (``cell``:
            a registered cell's name, ``MODULE:CLASS``, ``FILE.py:CLASS`` or a cell class; see
            ``rnnkit.layers.make_layer``).
        layer_options: ``make_layer``'s options for the recurrent layers (``recurrent_dropout``,
            ``weight_drop``, ``zoneout``, ``init``, ``max_dependency``).

    Shapes: ``(B, T)`` ids or ``(B, T, I)`` features in; ``(B, T, output_size)`` out, and the
    final state.

    Example::

        >>> lm = ManyToMany(65, vocab_size=65, embedding_size=32, hidden_size=64)
        >>> logits, state = lm(torch.randint(0, 65, (4, 16)))
        >>> logits.shape
        torch.Size([4, 16, 65])
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
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.embedding, rnn_in = input_layer(vocab_size, embedding_size, input_size)
        self.rnn = make_layer(
            cell,
            rnn_in,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            **(layer_options or {}),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), output_size)

    def forward(
        self, x: Tensor, state: State | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, State]:
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T, E)
        out, state = self.rnn(x, state, lengths=lengths)  # (B, T, D*H)
        return self.head(self.dropout(out)), state  # (B, T, output_size)

    # -- the pieces decoding needs (``rnnkit.decoding``) --------------------------------------
    def start(self, prefix: Tensor) -> State:
        """The state after reading ``prefix`` ``(B, P)`` (ids, or ``(B, P, I)`` features);
        the zero state when ``P`` is 0."""
        self._check_causal()
        if prefix.size(1) == 0:
            return self.rnn.initial_state(prefix.size(0), device=prefix.device)
        return self(prefix)[1]

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State, None]:
        """One step: tokens ``(B,)`` (or features ``(B, I)``) -> logits ``(B, V)`` and the next
        state. It is the model's own forward on a one-step sequence, so stepping a sequence
        gives the numbers of one forward over all of it, whatever the cell."""
        self._check_causal()
        logits, state = self(tokens.unsqueeze(1), state)  # (B, 1, V)
        return logits[:, 0], state, None

    def _check_causal(self) -> None:
        if self.rnn.bidirectional:
            raise ValueError(
                "step-by-step decoding needs a unidirectional model: a bidirectional one reads "
                "the steps that come after"
            )
