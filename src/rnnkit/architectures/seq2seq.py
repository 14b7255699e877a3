"""Encoder-decoder with attention: read a source sequence, write a target sequence.

``source -> embedding -> encoder (layers, optionally bidirectional)`` gives one output per
source step; the encoder's final state, through a learned bridge, starts the decoder.
At each target step the decoder reads the previous target token; its output queries the source
(``rnnkit.architectures.attention``), and ``tanh(W_c [context; output])`` is projected onto the
target vocabulary (Luong, Pham & Manning 2015, section 3).

Training feeds the true previous tokens (teacher forcing): then the whole target runs through
the decoder layer in one call, fused kernels included, and attention is one batched product.
With ``teacher_forcing < 1`` each step instead feeds, with that probability, the true token and
otherwise the model's own previous guess (scheduled sampling, Bengio et al. 2015), one step
at a time. The model exposes ``start`` (encode the source: the decoder's first state) and
``step`` (one target token, with its attention weights); greedy, sampled and beam-search
decoding are in ``rnnkit.decoding`` (``rnnkit.decoding.decode``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.architectures.attention import Attention, AttentionKind, Memory
from rnnkit.layers.build import CellSpec, make_layer
from rnnkit.state import State, from_leaves, leaves, map_state


@dataclass
class DecoderState:
    """What one decoding step needs: the decoder's recurrent state and the encoded source."""

    rnn: State
    """The decoder layer's state, each tensor ``(L, B, ...)``."""
    memory: Memory
    """The encoded source."""

    def index_select(self, index: Tensor) -> DecoderState:
        return DecoderState(
            map_state(lambda t: t[:, index], self.rnn), self.memory.index_select(index)
        )


class Seq2Seq(nn.Module):
    """An attentional encoder-decoder over token ids.

    Args:
        source_vocab_size, target_vocab_size: the two vocabularies (``<pad>`` = 0).
        embedding_size: width of both token embeddings.
        hidden_size: hidden units of every encoder and decoder layer, H.
        encoder_layers, decoder_layers: stacked layers on each side.
        bidirectional: read the source both ways (encoder outputs are ``2H`` wide).
        cell: ``"lstm"``, ``"gru"``, ``"rnn"``, ``"rnn_relu"``, or a custom cell class (such as
            ``rnnkit.LayerNormLSTMCell``), used on both sides.
        layer_options: ``make_layer``'s options for the recurrent layers (``recurrent_dropout``,
            ``weight_drop``, ``zoneout``, ``init``, ``max_dependency``).
        attention: ``"additive"`` or ``"dot"``.
        dropout: on embeddings, between layers and before the output layer, in training.
        bos_id, eos_id, pad_id: the special ids of the target vocabulary.

    Shapes: ``forward(source (B, S), source_lengths (B,), target_in (B, T))`` returns logits
    ``(B, T, target_vocab_size)`` and attention weights ``(B, T, S)``.

    Example::

        >>> model = Seq2Seq(30, 40, hidden_size=32, embedding_size=16)
        >>> src, lengths = torch.randint(4, 30, (2, 7)), torch.tensor([7, 5])
        >>> logits, weights = model(src, lengths, torch.randint(4, 40, (2, 6)))
        >>> logits.shape, weights.shape
        (torch.Size([2, 6, 40]), torch.Size([2, 6, 7]))
        >>> from rnnkit.decoding import decode
        >>> out = decode(model, src, lengths, beam=3, max_length=10)
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        *,
        embedding_size: int = 128,
        hidden_size: int = 256,
        encoder_layers: int = 1,
        decoder_layers: int = 1,
        bidirectional: bool = True,
        cell: CellSpec = "lstm",
        layer_options: Mapping[str, Any] | None = None,
        attention: AttentionKind = "additive",
        dropout: float = 0.0,
        bos_id: int = 2,
        eos_id: int = 3,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        D = 2 if bidirectional else 1
        self.num_directions = D
        self.source_embedding = nn.Embedding(source_vocab_size, embedding_size, padding_idx=pad_id)
        self.target_embedding = nn.Embedding(target_vocab_size, embedding_size, padding_idx=pad_id)
        self.encoder = make_layer(
            cell,
            embedding_size,
            hidden_size,
            num_layers=encoder_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            **(layer_options or {}),
        )
        self.decoder = make_layer(
            cell,
            embedding_size,
            hidden_size,
            num_layers=decoder_layers,
            dropout=dropout,
            **(layer_options or {}),
        )
        # one bridge per state tensor (h, or h and c): the top encoder layer's final states
        # (both directions side by side) -> every decoder layer's initial state
        enc_leaves = leaves(self.encoder.initial_state(1))
        dec_leaves = leaves(self.decoder.initial_state(1))
        if len(enc_leaves) != len(dec_leaves):
            raise ValueError("the encoder and decoder cells must have the same state structure")
        self.bridges = nn.ModuleList(
            nn.Linear(D * e.size(-1), decoder_layers * d.size(-1))
            for e, d in zip(enc_leaves, dec_leaves)
        )
        self.attention = Attention(hidden_size, D * hidden_size, kind=attention)
        self.combine = nn.Linear(D * hidden_size + hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, target_vocab_size)

    # -- the pieces --------------------------------------------------------------------------------
    def start(self, source: Tensor, source_lengths: Tensor) -> DecoderState:
        """Encode a padded source batch ``(B, S)`` with lengths ``(B,)``; return the decoder's
        state before the first target token."""
        emb = self.dropout(self.source_embedding(source))  # (B, S, E)
        outputs, final = self.encoder(emb, lengths=source_lengths)  # (B, S, D*H)
        memory = self.attention.prepare(outputs, source_lengths)
        B, D = source.size(0), self.num_directions
        zero = self.decoder.initial_state(B, dtype=outputs.dtype, device=outputs.device)
        parts = []
        for bridge, enc, dec in zip(self.bridges, leaves(final), leaves(zero)):
            top = enc[-D:].transpose(0, 1).reshape(B, -1)  # (B, D*H): the top layer's final
            init = torch.tanh(bridge(top)).view(B, dec.size(0), -1).transpose(0, 1)  # (L, B, H)
            parts.append(init.contiguous())
        return DecoderState(from_leaves(zero, parts), memory)

    def _output(self, dec_out: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        context, weights = self.attention(dec_out, memory)  # (B, T, D*H), (B, T, S)
        combined = torch.tanh(self.combine(torch.cat([context, dec_out], -1)))  # (B, T, H)
        return self.head(self.dropout(combined)), weights

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor]:
        """One decoding step: previous tokens ``(B,)`` -> logits ``(B, V)``, state, weights."""
        emb = self.dropout(self.target_embedding(tokens)).unsqueeze(1)  # (B, 1, E)
        out, rnn = self.decoder(emb, state.rnn)  # (B, 1, H)
        logits, weights = self._output(out, state.memory)
        return logits.squeeze(1), DecoderState(rnn, state.memory), weights.squeeze(1)

    # -- training ----------------------------------------------------------------------------------
    def forward(
        self,
        source: Tensor,
        source_lengths: Tensor,
        target_in: Tensor,
        *,
        teacher_forcing: float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """Logits ``(B, T, V)`` for ``target_in`` (``<bos>`` + target); weights ``(B, T, S)``."""
        state = self.start(source, source_lengths)
        if teacher_forcing >= 1.0:
            emb = self.dropout(self.target_embedding(target_in))  # (B, T, E)
            out, _ = self.decoder(emb, state.rnn)  # (B, T, H)
            return self._output(out, state.memory)
        logits_steps, weight_steps = [], []
        tokens = target_in[:, 0]
        for t in range(target_in.size(1)):
            logits, state, weights = self.step(tokens, state)
            logits_steps.append(logits)
            weight_steps.append(weights)
            if t + 1 < target_in.size(1):
                keep = torch.rand(tokens.shape, device=tokens.device)
                guess = logits.detach().argmax(-1)
                tokens = torch.where(keep < teacher_forcing, target_in[:, t + 1], guess)
        return torch.stack(logits_steps, 1), torch.stack(weight_steps, 1)
