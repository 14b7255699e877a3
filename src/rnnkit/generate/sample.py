"""Sampling text from a trained language model, streamed as it is generated."""

from __future__ import annotations

import codecs
from collections.abc import Callable

import torch

from rnnkit.architectures import ManyToMany
from rnnkit.generate.decoding import SamplingConfig, pick_next
from rnnkit.generate.stepper import Stepper
from rnnkit.text.vocab import Vocab


def sample_text(
    model: ManyToMany,
    vocab: Vocab,
    *,
    prime: str = "",
    length: int = 500,
    sampling: SamplingConfig | None = None,
    write: Callable[[str], None] | None = None,
) -> str:
    """Generate ``length`` tokens after ``prime``; return them as text.

    The prime is read by the model's own forward pass; each new token then costs one step of a
    ``Stepper``. Nothing builds an autograd graph, so memory stays flat however long the text.
    ``write``, if given, receives the text piece by piece as it is generated.
    """
    sampling = sampling or SamplingConfig()
    if length < 0:
        raise ValueError(f"--length must be >= 0, got {length}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    start = prime or "\n"
    ids = vocab.encode(start).to(device)
    if ids.numel() == 0:
        raise ValueError("the prime encodes to no tokens")
    decoder = codecs.getincrementaldecoder("utf-8")("replace") if vocab.kind == "byte" else None
    pieces: list[str] = []
    model.eval()
    with torch.inference_mode():
        stepper = Stepper(model)
        if ids.numel() > 1:
            _, layer_state = model(ids[:-1].unsqueeze(0))  # (1, P-1) -> state after the prime
            state = stepper.from_layer_state(layer_state)
        else:
            state = stepper.zero_state(1, dtype=stepper.head_w_t.dtype, device=device)
        token = ids[-1:]
        for _ in range(length):
            logits, state = stepper.step(token, state)
            token = pick_next(logits, sampling, generator)
            if decoder is not None:
                piece = decoder.decode(bytes([int(token)]))
            else:
                piece = vocab.symbols[int(token)]
            pieces.append(piece)
            if write is not None and piece:
                write(piece)
        if decoder is not None:
            tail = decoder.decode(b"", final=True)
            pieces.append(tail)
            if write is not None and tail:
                write(tail)
    return "".join(pieces)
