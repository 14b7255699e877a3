"""Stepping a trained language model one token at a time, fast, with no autograd graph.

Calling a recurrent layer once per token pays the layer's whole set-up each time. A stepper
instead precomputes, once, everything that does not depend on the state:

- the first layer's input projection for every token, ``E W_ih^T + b_ih (+ b_hh)``, a table
  ``(V, G)``: the embedding and the input matmul become one row lookup;
- for upper layers, ``[W_ih W_hh]`` side by side, so both products are one matmul;

and then does per token only what depends on the state: one matmul per layer, the gate maths,
the head. The equations are those of ``rnnkit.cells.functional``; a test checks the stepper's
logits against the model's own forward pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.architectures import ManyToMany
from rnnkit.state import State


class Stepper:
    """A frozen, graph-free, one-token-at-a-time view of a ``ManyToMany`` token model."""

    def __init__(self, model: ManyToMany) -> None:
        rnn = model.rnn
        if model.embedding is None or rnn.bidirectional or getattr(rnn, "proj_size", 0):
            raise ValueError("the stepper needs a unidirectional token model without projection")
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
        H = self.hidden_size
        x = None
        new_state = []
        for layer, p in enumerate(self.layers):
            s = state[layer]
            h = s[0] if isinstance(s, tuple) else s
            if self.mode == "GRU":
                gi = p["table"][token] if layer == 0 else torch.addmm(p["b_ih"], x, p["w_ih_t"])
                gh = torch.addmm(p["b_hh"], h, p["w_hh_t"])
                rz = torch.sigmoid(gi[:, : 2 * H] + gh[:, : 2 * H])
                r, z = rz[:, :H], rz[:, H:]
                n = torch.tanh(torch.addcmul(gi[:, 2 * H :], r, gh[:, 2 * H :]))
                h = n + z * (h - n)  # (1 - z) n + z h
                new_state.append(h)
            else:
                if layer == 0:
                    gates = torch.addmm(p["table"][token], h, p["w_hh_t"])
                else:
                    gates = torch.addmm(p["b"], torch.cat([x, h], 1), p["w_t"])
                if self.mode == "LSTM":
                    act = torch.sigmoid(gates)
                    i, f, o = act[:, :H], act[:, H : 2 * H], act[:, 3 * H :]
                    g = torch.tanh(gates[:, 2 * H : 3 * H])
                    c = torch.addcmul(f * s[1], i, g)
                    h = o * torch.tanh(c)
                    new_state.append((h, c))
                else:
                    h = torch.tanh(gates) if self.mode == "RNN_TANH" else torch.relu(gates)
                    new_state.append(h)
            x = h
        return torch.addmm(self.head_b, x, self.head_w_t), new_state

    def from_layer_state(self, state: State) -> list:
        """Convert a layer's state ``(L, B, H)`` (or ``(h, c)``) to the stepper's per-layer list."""
        if isinstance(state, Tensor):
            return list(state.unbind(0))
        return list(zip(state[0].unbind(0), state[1].unbind(0)))

    def zero_state(self, batch_size: int, *, dtype=None, device=None) -> list:
        z = self.head_w_t.new_zeros(batch_size, self.hidden_size, dtype=dtype, device=device)
        return [(z, z) if self.mode == "LSTM" else z for _ in range(self.num_layers)]
