"""Decoding: sampling rules, greedy and beam search, text sampling, and the per-token steppers.

Decoding takes a model and reads it through the pure pieces every architecture exposes,
``start(...)`` and ``step(tokens, state)``; the architectures import nothing from here.
"""

from rnnkit.decoding.models import Decoded, decode, generate
from rnnkit.decoding.sample import sample_text
from rnnkit.decoding.sampling import SamplingConfig, pick_next
from rnnkit.decoding.search import Hypothesis, beam_search, decode_steps
from rnnkit.decoding.stepper import ForwardStepper, Stepper, stepper_for

__all__ = [
    "Decoded",
    "ForwardStepper",
    "Hypothesis",
    "SamplingConfig",
    "Stepper",
    "beam_search",
    "decode",
    "decode_steps",
    "generate",
    "pick_next",
    "sample_text",
    "stepper_for",
]
