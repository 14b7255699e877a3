"""``Task``: what a task gives the trainer, as a base class with defaults.

A task subclasses it and fills in five methods: the model, the batch of a step, its loss, the
evaluation of a held-out split and ``describe`` (the JSON that rebuilds it, stored in the run's
``config.json``). What most tasks do not need has a default: nothing carried between batches,
the validation loss as the figure to beat, "items" as what a step counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn


class Task:
    """The trainer's view of a task; see the module docstring.

    Class attributes a task may override:

    - ``kind``: its registered name, stored in the run's ``config.json`` (``lm``, ``classify``).
    - ``monitor``: the validation figure that picks the best checkpoint and drives early
      stopping, and whether higher or lower is better (default ``("loss", "min")``).
    - ``unit``: what ``batch_loss`` counts, for the progress bar and the logs (``tokens``,
      ``examples``, ``windows``).
    - ``loss_label``: how the loss reads in plots and summaries (``nats per token``).
    - ``unused_parameters``: whether some parameters may get no gradient in a step (layers that
      ``before_step`` freezes); under torchrun, DistributedDataParallel must then look for them
      in every backward pass, or it waits for their gradients and fails at the next step.
    - ``default_budget``: the ``TrainConfig`` budget fields (``max_steps``, ``patience``) a run
      takes when the user gives no budget at all; empty: the trainer's 5,000 steps.
    """

    kind: str = ""
    monitor: tuple[str, str] = ("loss", "min")
    unit: str = "items"
    loss_label: str = "loss"
    unused_parameters: bool = False
    default_budget: ClassVar[dict[str, int]] = {}

    def build_model(self) -> nn.Module:
        """A fresh model for this task's data (sizes from the vocabulary, the classes...)."""
        raise NotImplementedError

    def train_batch(self, step: int) -> Any:
        """The batch for optimiser step ``step``: a pure function of the step, for resuming."""
        raise NotImplementedError

    def batch_loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, int]:
        """The mean loss of a batch, and how many ``unit``s it covered."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, split: str, limit: int | None = None) -> dict:
        """Metrics on a held-out split (at most ``limit`` units of it); must hold ``loss``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild the task and its model, as JSON, with ``kind``."""
        raise NotImplementedError

    def shard(self, rank: int, world_size: int) -> None:
        """Train only on rank ``rank``'s share of every batch, for data-parallel training over
        ``world_size`` processes: disjoint shares that together make the batch one process
        would train on (see ``rnnkit.training.distributed``)."""
        raise ValueError(f"the {self.kind} task cannot train in several processes (torchrun)")

    def is_stand_in(self, step: int) -> bool:
        """Whether this rank's share of step ``step``'s batch is a stand-in that must weigh
        nothing (a batch with fewer items than processes); never, by default."""
        return False

    def carry(self) -> dict[str, Tensor]:
        """State carried from batch to batch (a language model's hidden state), saved in every
        checkpoint so that a resumed run goes on exactly; none by default."""
        return {}

    def restore_carry(self, tensors: dict[str, Tensor]) -> None:
        """Take back what ``carry`` gave, from a checkpoint."""
        if tensors:
            raise ValueError(f"the {self.kind} task carries no state, got {sorted(tensors)}")

    def param_groups(self, model: nn.Module) -> list[dict] | None:
        """Optimiser groups, each ``{"params": [...], "lr_scale": factor}`` (discriminative
        rates, ``rnnkit.training.schedules``); None (the default): one rate for all."""
        return None

    def before_step(self, model: nn.Module, step: int, progress: float, lr: float) -> float:
        """The learning rate of optimiser step ``step`` (``lr``: the trainer's schedule at
        ``progress``, the fraction of the budget spent); a task may set its own schedule or
        freeze layers here. A pure function of the step, for resuming."""
        return lr
