"""Stepping a trained language model one token at a time, with no autograd graph.

Any ``ManyToMany`` token model steps through ``ForwardStepper``: its own forward on one token,
whatever the cell. For the standard layers (``rnnkit.RNN``, ``LSTM``, ``GRU``), ``Stepper`` does
the same faster; ``stepper_for`` picks the one that applies.

Calling a recurrent layer once per token pays the layer's whole set-up each time. ``Stepper``
instead precomputes, once, everything that does not depend on the state:

- the first layer's input projection for every token, ``E W_ih^T + b_ih (+ b_hh)``, a table
  ``(V, G)``: the embedding and the input matmul become one row lookup;
- for upper layers, ``[W_ih W_hh]`` side by side, so both products are one matmul;

and then does per token only what depends on the state: one matmul per layer, the gate maths,
the head. The gate maths is ``rnnkit.cells.functional``'s own (``lstm_update``, ``gru_update``,
``ACTIVATIONS``); a test checks the stepper's logits against the model's own forward pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.architectures import ManyToMany
from rnnkit.cells import functional as cellfn
from rnnkit.layers.standard import GRU, LSTM, RNN
from rnnkit.state import State


def stepper_for(model: ManyToMany) -> Stepper | ForwardStepper:
    """The fast ``Stepper`` where it applies (a standard layer), else a ``ForwardStepper``."""
    _check_token_model(model)
    if _is_standard(model.rnn) and not model.rnn.proj_size:
        return Stepper(model)
    return ForwardStepper(model)


def _is_standard(layer: object) -> bool:
    """Whether ``layer`` is one of rnnkit's standard layers (``RNN``, ``LSTM``, ``GRU``)."""
    return isinstance(layer, (RNN, LSTM, GRU))


def _check_token_model(model: ManyToMany) -> None:
    if model.embedding is None:
        raise ValueError("stepping needs a token model (built with vocab_size), not features")
    if model.rnn.bidirectional:
        raise ValueError(
            "sampling needs a unidirectional model: a bidirectional one reads the steps that "
            "come after the one it predicts"
        )


class ForwardStepper:
    """A graph-free, one-token-at-a-time view of any ``ManyToMany`` token model.

    Each step is the model's own ``step`` (its forward on a one-token sequence with the carried
    state), so the logits are those of one forward over the whole sequence, for every cell.
    """

    def __init__(self, model: ManyToMany) -> None:
        _check_token_model(model)
        self.model = model

    @torch.inference_mode()
    def start(self, prefix: Tensor) -> State:
        """The state after reading ``prefix`` ``(B, P)`` (P may be 0: the zero state)."""
        return self.model.start(prefix)

    @torch.inference_mode()
    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        """Logits ``(B, V)`` for the next token after ``token`` ``(B,)``; the state advances."""
        logits, state, _ = self.model.step(token, state)
        return logits, state


class Stepper:
    """A frozen, graph-free, one-token-at-a-time view of a ``ManyToMany`` token model whose layer
    is a standard ``rnnkit.RNN``, ``LSTM`` or ``GRU`` (any other: ``ForwardStepper``)."""

    def __init__(self, model: ManyToMany) -> None:
        rnn = model.rnn
        if not _is_standard(rnn):
            raise ValueError(
                f"the fast stepper needs an rnnkit.RNN, LSTM or GRU layer, got "
                f"{type(rnn).__name__}: use ForwardStepper (or stepper_for) for other layers"
            )
        _check_token_model(model)
        if rnn.proj_size:
            raise ValueError("the fast stepper needs a layer without projection (proj_size=0)")
        self.model = model
        self.mode = rnn.mode  # LSTM, GRU, RNN_TANH, RNN_RELU
        self.num_layers = rnn.num_layers
        self.hidden_size = rnn.hidden_size
        with torch.no_grad():
            emb = model.embedding.weight  # (V, E)
            self.layers = []
            for layer in range(self.num_layers):
                w_ih = getattr(rnn, f"weight_ih_l{layer}").detach()
                w_hh = getattr(rnn, f"weight_hh_l{layer}").detach()
                b_ih = getattr(rnn, f"bias_ih_l{layer}").detach() if rnn.bias else None
                b_hh = getattr(rnn, f"bias_hh_l{layer}").detach() if rnn.bias else None
                zeros = torch.zeros(w_hh.size(0), dtype=w_hh.dtype, device=w_hh.device)
                b_ih = zeros if b_ih is None else b_ih
                b_hh = zeros if b_hh is None else b_hh
                if self.mode == "GRU":  # b_hn sits inside r * (W_hn h + b_hn): keep it apart
                    entry = {"w_hh_t": w_hh.t().contiguous(), "b_hh": b_hh.unsqueeze(0)}
                    if layer == 0:
                        entry["table"] = emb @ w_ih.t() + b_ih  # (V, 3H)
                    else:
                        entry["w_ih_t"] = w_ih.t().contiguous()
                        entry["b_ih"] = b_ih.unsqueeze(0)
                else:
                    if layer == 0:
                        entry = {
                            "table": emb @ w_ih.t() + b_ih + b_hh,  # (V, G)
                            "w_hh_t": w_hh.t().contiguous(),
                        }
                    else:
                        entry = {
                            "w_t": torch.cat([w_ih, w_hh], 1).t().contiguous(),  # (2H, G)
                            "b": (b_ih + b_hh).unsqueeze(0),
                        }
                self.layers.append(entry)
            self.head_w_t = model.head.weight.detach().t().contiguous()  # (H, V)
            self.head_b = model.head.bias.detach().unsqueeze(0)

    def step(self, token: Tensor, state: list) -> tuple[Tensor, list]:
        """Logits ``(B, V)`` for the next token after ``token`` ``(B,)``; the state advances."""
        x = None
        new_state = []
        for layer, p in enumerate(self.layers):
            s = state[layer]
            h = s[0] if isinstance(s, tuple) else s
            if self.mode == "GRU":
                gi = p["table"][token] if layer == 0 else torch.addmm(p["b_ih"], x, p["w_ih_t"])
                h = cellfn.gru_update(gi, torch.addmm(p["b_hh"], h, p["w_hh_t"]), h)
                new_state.append(h)
            else:
                if layer == 0:
                    gates = torch.addmm(p["table"][token], h, p["w_hh_t"])
                else:
                    gates = torch.addmm(p["b"], torch.cat([x, h], 1), p["w_t"])
                if self.mode == "LSTM":
                    h, c = cellfn.lstm_update(gates, s[1])
                    new_state.append((h, c))
                else:
                    h = cellfn.ACTIVATIONS[self.mode](gates)
                    new_state.append(h)
            x = h
        return torch.addmm(self.head_b, x, self.head_w_t), new_state

    def start(self, prefix: Tensor) -> list:
        """The state after reading ``prefix`` ``(B, P)`` with the model's forward (P may be 0)."""
        with torch.inference_mode():
            return self.from_layer_state(self.model.start(prefix))

    def from_layer_state(self, state: State) -> list:
        """Convert a layer's state ``(L, B, H)`` (or ``(h, c)``) to the stepper's per-layer list."""
        if isinstance(state, Tensor):
            return list(state.unbind(0))
        return list(zip(state[0].unbind(0), state[1].unbind(0)))

    def zero_state(self, batch_size: int, *, dtype=None, device=None) -> list:
        """The zero state of a batch, in the stepper's per-layer list."""
        z = self.head_w_t.new_zeros(batch_size, self.hidden_size, dtype=dtype, device=device)
        return [(z, z) if self.mode == "LSTM" else z for _ in range(self.num_layers)]
