"""Generation: decoding rules, a fast stepper, and text sampling."""

from rnnkit.generate.decoding import SamplingConfig, pick_next
from rnnkit.generate.sample import sample_text
from rnnkit.generate.stepper import Stepper

__all__ = ["SamplingConfig", "Stepper", "pick_next", "sample_text"]
