"""Sampling text from a trained language model, streamed as it is generated."""

from __future__ import annotations

import codecs
from collections.abc import Callable

import torch

from rnnkit.architectures import ManyToMany
from rnnkit.decoding.sampling import SamplingConfig, pick_next
from rnnkit.decoding.stepper import stepper_for
from rnnkit.text.unknown import check_known
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

    The prime is read by the model's own forward pass; each new token then costs one step of
    ``stepper_for(model)``: the fast ``Stepper`` for a standard layer, the model's own forward
    on one token for any other cell. Nothing builds an autograd graph, so memory stays flat
    however long the text. ``write``, if given, receives the text piece by piece as it is
    generated.

    Characters of ``prime`` that the vocabulary does not hold read as its unknown symbol, with
    a warning on stderr that names them (``rnnkit.text.unknown``). A word vocabulary reads the
    prime as words (``<unk>`` for unknown ones), starts after ``<unk>`` when there is no prime,
    and writes the words it generates with a space before each (none before the first when
    there is no prime).

    Raises:
        ValueError: a bad length, an empty prime, a prime with no known character, a feature
            model or a bidirectional one.
    """
    sampling = sampling or SamplingConfig()
    if length < 0:
        raise ValueError(f"--length must be >= 0, got {length}")
    words = vocab.kind == "word"
    check_known([vocab.split(prime)], vocab, "--prime", "words" if words else "characters")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    if words and not prime:  # no newline token among words: start where anything may follow
        ids = torch.tensor(vocab.lookup([vocab.UNKNOWN]), device=device)
    else:
        ids = vocab.encode(prime or "\n").to(device)
    if ids.numel() == 0:
        raise ValueError("the prime encodes to no tokens")
    decoder = codecs.getincrementaldecoder("utf-8")("replace") if vocab.kind == "byte" else None
    pieces: list[str] = []
    stepper = stepper_for(model)
    model.eval()
    with torch.inference_mode():
        state = stepper.start(ids[None, :-1])  # (1, P-1): the state after all but the last
        token = ids[-1:]
        for _ in range(length):
            logits, state = stepper.step(token, state)
            token = pick_next(logits, sampling, generator)
            if decoder is not None:
                piece = decoder.decode(bytes([int(token)]))
            else:
                piece = vocab.symbols[int(token)]
                if words and (prime or pieces):
                    piece = " " + piece
            pieces.append(piece)
            if write is not None and piece:
                write(piece)
        if decoder is not None:
            tail = decoder.decode(b"", final=True)
            pieces.append(tail)
            if write is not None and tail:
                write(tail)
    return "".join(pieces)
