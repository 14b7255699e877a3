"""A short tour of rnnkit's layers, end to end, in about a minute on a laptop CPU.

1. rnnkit.LSTM loads a torch.nn.LSTM's weights and gives the same numbers on both paths.
2. Per-step states show the vanishing gradient: dL/dh_t of a fresh tanh RNN vs an LSTM.
3. A small many-to-one model on a memory task: recall the first symbol of a noisy sequence,
   with variable lengths. The LSTM learns it; accuracy is measured on held-out sequences and
   compared with chance.

Run: ``make demo`` (or ``python examples/layers_tour.py``).
"""

from __future__ import annotations

import time

import torch
from torch import nn

import rnnkit


def parity() -> None:
    torch.manual_seed(0)
    ref = nn.LSTM(8, 32, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(4, 20, 8)
    print("1. parity with torch.nn.LSTM (max |difference| of outputs)")
    for backend in ("native", "reference"):
        ours = rnnkit.LSTM(
            8, 32, num_layers=2, bidirectional=True, batch_first=True, backend=backend
        )
        ours.load_state_dict(ref.state_dict(), strict=True)
        diff = (ours(x)[0] - ref(x)[0]).abs().max().item()
        print(f"   backend={backend:<9} {diff:.2e}")


def gradient_through_time(steps: int = 50) -> None:
    print(f"\n2. ||dL/dh_t|| for a loss at the last of {steps} steps (fresh models, hidden 64)")
    torch.manual_seed(0)
    x = torch.randn(steps, 8, 16)
    print("   t:      " + "".join(f"{t:>10d}" for t in (0, 10, 25, 40, steps - 1)))
    for name, layer in (
        ("RNN", rnnkit.RNN(16, 64)),
        ("LSTM", rnnkit.LSTM(16, 64)),
        ("GRU", rnnkit.GRU(16, 64)),
    ):
        out, _, states = layer(x, return_states=True)
        grads = torch.autograd.grad(out[-1].sum(), states.at(0, part=0))  # dL/dh_t
        g = [gr.norm().item() for gr in grads]
        print(f"   {name:<7} " + "".join(f"{g[t]:>10.2e}" for t in (0, 10, 25, 40, steps - 1)))


def first_symbol_task(n: int, min_len: int, max_len: int, symbols: int, gen: torch.Generator):
    """Sequences of random symbols; the label is the first one, to be recalled at the end."""
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=gen)
    tokens = torch.randint(0, symbols, (n, max_len), generator=gen)
    return tokens, lengths, tokens[:, 0].clone()


class Recall(nn.Module):
    """Many-to-one: embed, run an LSTM over the valid steps, classify from the final state."""

    def __init__(self, symbols: int, hidden_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(symbols, 16)
        self.rnn = rnnkit.LSTM(16, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, symbols)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.rnn(self.embed(tokens), lengths=lengths)  # h: (1, B, H)
        return self.head(h[-1])


def memory_task() -> None:
    symbols, min_len, max_len = 4, 10, 30
    print(f"\n3. recall the first of {min_len}-{max_len} random symbols ({symbols} kinds), LSTM")
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    train = first_symbol_task(4096, min_len, max_len, symbols, gen)
    test = first_symbol_task(1024, min_len, max_len, symbols, gen)
    model = Recall(symbols, 48)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = time.perf_counter()
    for step in range(1500):
        idx = torch.randint(0, 4096, (64,), generator=gen)
        logits = model(train[0][idx], train[1][idx])
        loss = nn.functional.cross_entropy(logits, train[2][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == 1499:
            print(f"   step {step:>4d}  loss {loss.item():.3f}")
    with torch.no_grad():
        acc = (model(test[0], test[1]).argmax(-1) == test[2]).float().mean().item()
    print(
        f"   held-out accuracy {acc:.1%} (chance {1 / symbols:.0%}), "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    parity()
    gradient_through_time()
    memory_task()
