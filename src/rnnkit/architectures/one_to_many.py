"""One-to-many: one input (a class, a feature vector) -> a sequence of tokens.

The input becomes a condition vector ``z``: an embedding row for a class id, or a linear map
of a feature vector (an image's features, say). ``z`` reaches the recurrent decoder in either or
both of two ways:

- ``init_state``: ``z``, through a learned bridge and a tanh, is every layer's initial state;
- ``feed``: ``z`` is concatenated to the token embedding at every step.

The decoder then writes a sequence as a language model does, starting from ``<bos>``. Training
feeds the true previous tokens. The model exposes ``start`` (the state before the first token)
and ``step`` (one token); sampling, greedy decoding and beam search are in ``rnnkit.decoding``
(``rnnkit.decoding.generate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.layers.build import CellSpec, make_layer
from rnnkit.state import State, from_leaves, leaves, map_state


@dataclass
class OneToManyState:
    """The decoder's recurrent state and the condition vector of each row."""

    rnn: State
    """Each tensor ``(L, B, ...)``."""
    condition: Tensor
    """``(B, C)``."""

    def index_select(self, index: Tensor) -> OneToManyState:
        return OneToManyState(map_state(lambda t: t[:, index], self.rnn), self.condition[index])


class OneToMany(nn.Module):
    """Generate a token sequence from one input.

    Args:
        vocab_size: the output vocabulary (``<pad>`` = 0, ``<bos>``, ``<eos>`` as below).
        num_conditions: the input is a class id in ``[0, num_conditions)``; or
        condition_size: the input is a feature vector of this size (give exactly one).
        condition_embedding_size: width of the condition vector ``z``, C.
        embedding_size: width of the token embedding.
        hidden_size, num_layers, dropout: the recurrent decoder.
        cell: ``"lstm"``, ``"gru"``, ``"rnn"``, ``"rnn_relu"`` or a custom cell class.
        layer_options: ``make_layer``'s options for the recurrent layers (``recurrent_dropout``,
            ``weight_drop``, ``zoneout``, ``init``, ``max_dependency``).
        init_state: ``z`` sets the initial state (see the module docstring).
        feed: ``z`` is fed at every step.
        bos_id, eos_id: the start and end tokens.

    Shapes: ``forward(condition (B,) or (B, F), target_in (B, T))`` -> logits ``(B, T, V)``.

    Example::

        >>> model = OneToMany(30, num_conditions=4, hidden_size=32)
        >>> logits = model(torch.tensor([0, 3]), torch.randint(4, 30, (2, 6)))
        >>> logits.shape
        torch.Size([2, 6, 30])
        >>> from rnnkit.decoding import SamplingConfig, generate
        >>> words = generate(model, torch.tensor([1, 2]), sampling=SamplingConfig(top_k=5))
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        num_conditions: int | None = None,
        condition_size: int | None = None,
        condition_embedding_size: int = 64,
        embedding_size: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        cell: CellSpec = "lstm",
        layer_options: Mapping[str, Any] | None = None,
        init_state: bool = True,
        feed: bool = True,
        bos_id: int = 2,
        eos_id: int = 3,
    ) -> None:
        super().__init__()
        if (num_conditions is None) == (condition_size is None):
            raise ValueError("give exactly one of num_conditions (class input) or condition_size")
        if not (init_state or feed):
            raise ValueError("the condition must set the initial state, be fed, or both")
        self.bos_id, self.eos_id = bos_id, eos_id
        self.init_state, self.feed = init_state, feed
        C = condition_embedding_size
        if num_conditions is not None:
            self.condition: nn.Module = nn.Embedding(num_conditions, C)
        else:
            self.condition = nn.Linear(condition_size, C)  # type: ignore[arg-type]
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=0)
        self.rnn = make_layer(
            cell,
            embedding_size + (C if feed else 0),
            hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            **(layer_options or {}),
        )
        self.bridges = nn.ModuleList(
            nn.Linear(C, num_layers * leaf.size(-1))
            for leaf in leaves(self.rnn.initial_state(1))
            if init_state
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def start(self, condition: Tensor) -> OneToManyState:
        """The state before the first token, for a batch of inputs."""
        z = self.condition(condition)  # (B, C)
        B = z.size(0)
        state = self.rnn.initial_state(B, dtype=z.dtype, device=z.device)
        if self.init_state:
            parts = [
                torch.tanh(bridge(z)).view(B, leaf.size(0), -1).transpose(0, 1).contiguous()
                for bridge, leaf in zip(self.bridges, leaves(state))
            ]
            state = from_leaves(state, parts)
        return OneToManyState(state, z)

    def _inputs(self, tokens: Tensor, z: Tensor) -> Tensor:
        emb = self.dropout(self.embedding(tokens))  # (B, T, E)
        if self.feed:
            emb = torch.cat([emb, z[:, None, :].expand(-1, emb.size(1), -1)], -1)
        return emb

    def forward(self, condition: Tensor, target_in: Tensor) -> Tensor:
        """Logits ``(B, T, V)`` for ``target_in`` (``<bos>`` + target), teacher-forced."""
        state = self.start(condition)
        out, _ = self.rnn(self._inputs(target_in, state.condition), state.rnn)  # (B, T, H)
        return self.head(self.dropout(out))

    def step(self, tokens: Tensor, state: OneToManyState) -> tuple[Tensor, OneToManyState, None]:
        """One step: previous tokens ``(B,)`` -> logits ``(B, V)`` and the next state."""
        out, rnn = self.rnn(self._inputs(tokens[:, None], state.condition), state.rnn)
        return self.head(self.dropout(out[:, 0])), OneToManyState(rnn, state.condition), None
