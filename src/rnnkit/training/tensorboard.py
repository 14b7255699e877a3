"""An optional TensorBoard log of a run (``--tensorboard``): the figures of ``metrics.jsonl`` as
scalars in ``RUN/tensorboard/``, for ``tensorboard --logdir RUN``.

TensorBoard is an extra (``pip install 'rnnkit[tensorboard]'``); ``require_tensorboard`` says so
before a run starts, so a missing package never stops a run half-way.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = "tensorboard"
"""The log's folder inside the run folder."""


def require_tensorboard() -> None:
    """Raise a one-line ``ImportError`` naming the extra when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ImportError(
            "--tensorboard needs the tensorboard package: pip install 'rnnkit[tensorboard]'"
        ) from None


class TensorBoardLog:
    """Writes each ``metrics.jsonl`` record as scalars: ``train/loss``, ``train/lr``,
    ``train/grad_norm``, ``train/<unit>_per_s`` and ``val/<name>`` for every ``val_<name>``.

    Args:
        run_dir: the run folder; the events go to its ``tensorboard/`` folder.
        unit: what the task counts (``tokens``, ``examples``), for the throughput's name.
        resume_step: the step of the checkpoint a resumed run starts from: TensorBoard hides
            what a killed run logged after it, as ``_trim_log`` drops it from ``metrics.jsonl``.
    """

    def __init__(self, run_dir: Path, unit: str, resume_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / FOLDER), purge_step=purge)
        self.rate_tag = "train/" + unit.replace(" ", "_") + "_per_s"

    def write(self, record: dict) -> None:
        """Log one record (other records, a skipped batch's, have nothing to log)."""
        step = record["step"]
        train = {
            "train/loss": record.get("loss"),
            "train/lr": record.get("lr"),
            "train/grad_norm": record.get("grad_norm"),
            self.rate_tag: record.get("tokens_per_s"),
        }
        val = {"val/" + k[4:]: v for k, v in record.items() if k.startswith("val_")}
        for tag, value in {**train, **val}.items():
            if _is_number(value):
                self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _is_number(value) -> bool:
    # a nested report (per-class figures) or a flag is not a scalar to plot
    return isinstance(value, (int, float)) and not isinstance(value, bool)
