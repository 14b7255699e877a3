"""Diagnostics that make the vanishing-gradient problem visible.

- ``gradients``: ||dL/dh_t|| through time, Jacobians dh_T/dh_t, the memory horizon;
- ``gates``: LSTM and GRU gate statistics over a sequence;
- ``hidden``: heat-maps of hidden units over text, and units that track features of it;
- ``unroll_print``: the unrolled computation of a small model, step by step.
- ``states``: the per-step states they all read, from the reference path in eval mode.
- ``models``: fresh layers to diagnose (cell, initialisation, forget bias); ``lm``: a trained
  language model and its text, as given (loading a run is the task's: diagnose never imports
  ``rnnkit.tasks``).
- ``memory``, ``memory_bench``: the adding problem and copy task, and the benchmark of which
  lengths each cell learns to bridge.
"""

from rnnkit.diagnose.gradients import GradientFlow, Verdict, gradient_flow, judge
from rnnkit.diagnose.models import fresh_layer

__all__ = ["GradientFlow", "Verdict", "fresh_layer", "gradient_flow", "judge"]
