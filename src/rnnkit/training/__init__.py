"""Training: one loop for every task, with checkpoints, logs, budgets and plots."""

from rnnkit.training.checkpoint import CheckpointError
from rnnkit.training.config import TrainConfig
from rnnkit.training.run_lock import RunInUseError
from rnnkit.training.trainer import RunResult, Task, Trainer

__all__ = ["CheckpointError", "RunInUseError", "RunResult", "Task", "TrainConfig", "Trainer"]
