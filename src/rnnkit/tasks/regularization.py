"""AWD-LSTM's regularisers that need no change to the network (Merity, Keskar and Socher 2017):
embedding dropout (section 4.3) and activation / temporal activation regularisation (4.6).

- Embedding dropout drops whole rows of the embedding matrix, so a dropped word vanishes from
  every place it occurs in the batch; the kept rows are scaled by ``1 / (1 - p)``. One mask per
  batch, as in the paper's code.
- AR adds ``alpha * mean(h_t ** 2)`` over the top layer's outputs: it keeps activations small.
- TAR adds ``beta * mean((h_t - h_{t-1}) ** 2)``: it keeps the state from jumping between steps.
  (Merity et al. take AR on the dropped-out outputs; with the outputs as the layer gives them,
  the two terms read the same tensor. Padding steps are masked out.)

``Regularizer.attach`` adds them to a model by forward hooks on its ``embedding`` and ``rnn``
modules, in training only; a rebuilt model for evaluation or prediction has no hooks. Weight
drop and variational dropout change the cells and layers and live there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.state import lengths_mask


@dataclass(kw_only=True)
class TokenRegularisers:
    """The fields of these regularisers, shared by the model configs of token models (the
    language model and the classifier); a run stored before they existed loads with these
    defaults, which add nothing."""

    embedding_dropout: float = 0.0
    """Drop whole rows of the embedding (a token vanishes from the whole batch), in training
    (AWD-LSTM; 0.1 there)."""
    ar: float = 0.0
    """Activation regularisation: this times the mean square of the top layer's outputs
    (AWD-LSTM: 2)."""
    tar: float = 0.0
    """Temporal activation regularisation: this times the mean square change of the top
    layer's outputs from one step to the next (AWD-LSTM: 1)."""


def check_regularization(cfg) -> None:
    """Validate a model config's ``embedding_dropout``, ``ar`` and ``tar`` fields."""
    if not 0 <= cfg.embedding_dropout < 1:
        raise ValueError(f"--embedding-dropout must lie in [0, 1), got {cfg.embedding_dropout}")
    for flag, value in (("--ar", cfg.ar), ("--tar", cfg.tar)):
        if value < 0:
            raise ValueError(f"{flag} must be >= 0, got {value}")


def embedding_dropout_mask(vocab_size: int, p: float, device=None) -> Tensor:
    """``(V,)`` row factors: 0 for a dropped row, ``1 / (1 - p)`` for a kept one."""
    keep = torch.rand(vocab_size, device=device) >= p
    return keep.float() / (1 - p)


class Regularizer:
    """Embedding dropout and AR/TAR for one model; ``penalty`` after each forward."""

    def __init__(self, embedding_dropout: float = 0.0, ar: float = 0.0, tar: float = 0.0):
        self.p, self.ar, self.tar = embedding_dropout, ar, tar
        self._outputs: Tensor | None = None

    @property
    def active(self) -> bool:
        return bool(self.p or self.ar or self.tar)

    def attach(self, model: nn.Module) -> nn.Module:
        """Hook ``model.embedding`` (row dropout) and ``model.rnn`` (outputs kept for
        ``penalty``); returns the model."""
        embedding = getattr(model, "embedding", None)
        if self.p and isinstance(embedding, nn.Embedding):
            embedding.register_forward_hook(self._drop_rows)
        if self.ar or self.tar:
            model.rnn.register_forward_hook(self._keep_outputs)
        return model

    def _drop_rows(self, module: nn.Embedding, args, out: Tensor) -> Tensor | None:
        if not module.training:
            return None
        mask = embedding_dropout_mask(module.num_embeddings, self.p, out.device)
        return out * mask[args[0]].unsqueeze(-1).to(out.dtype)  # (B, T, E)

    def _keep_outputs(self, module: nn.Module, args, out) -> None:
        if module.training:
            self._outputs = out[0] if isinstance(out, tuple) else out  # (B, T, D*H)

    def penalty(self, lengths: Tensor | None = None) -> Tensor | float:
        """``alpha`` AR + ``beta`` TAR of the outputs of the last forward (0 without them);
        ``lengths`` masks padding out."""
        y, self._outputs = self._outputs, None
        if y is None or not (self.ar or self.tar):
            return 0.0
        y = y.float()
        mask = (
            lengths_mask(lengths, y.size(1), y.device)
            if lengths is not None
            else torch.ones(y.shape[:2], dtype=torch.bool, device=y.device)
        ).unsqueeze(-1)  # (B, T, 1)
        total = y.new_zeros(())
        if self.ar:
            total = total + self.ar * (y.pow(2) * mask).sum() / (mask.sum() * y.size(-1))
        if self.tar and y.size(1) > 1:
            pairs = mask[:, 1:] & mask[:, :-1]
            diff = (y[:, 1:] - y[:, :-1]).pow(2) * pairs
            total = total + self.tar * diff.sum() / (pairs.sum().clamp(min=1) * y.size(-1))
        return total
