"""Data-parallel training under ``torchrun``: the process group, and the few collectives the
trainer needs so that every rank takes the same decisions.

``torchrun`` starts one process per device and tells each its place in the environment
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, the rendezvous in ``MASTER_ADDR``/``MASTER_PORT``).
``Group.from_env`` reads them: with ``WORLD_SIZE`` above 1 it joins the process group (gloo on
the CPU, NCCL on CUDA); otherwise it is a group of one that does no communication at all, so a
plain ``rnnkit train`` runs exactly as it always did.

How a run is shared (see docs/distributed.md):

- ``--batch-size`` is the *global* batch B; rank r trains on its slice of every batch (rows
  ``r, r + W, ...``), so 2 processes give the same updates as one process with the same flags.
- Each rank's loss is weighted by its share of the batch's units before the gradients are
  averaged, so uneven slices (the last batch of a pass, a tagger's tokens) weigh as in one
  process.
- Rank 0 alone writes the run folder and evaluates; every decision that ends or shapes the run
  (the elapsed time of a time budget, stop signals, a non-finite loss, early stopping) comes from
  a collective or from rank 0, so no rank waits at a collective that the others skipped.
- A rank that dies breaks the others' next collective (gloo and NCCL notice a closed peer);
  a peer that hangs alive is given up after ``RNNKIT_DIST_TIMEOUT`` seconds (default 600).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

T = TypeVar("T")
TIMEOUT_ENV = "RNNKIT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0


class PeerError(RuntimeError):
    """Rank 0 failed at a step every rank waits for; the other ranks stop with this (rank 0
    reports the cause)."""


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when not under torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def restarted() -> bool:
    """Whether torchrun restarted the workers after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def local_cuda_device() -> torch.device | None:
    """``cuda:LOCAL_RANK`` when torchrun runs several processes and CUDA is here, else None:
    what ``--device auto`` and ``--device cuda`` mean for one rank."""
    if env_world_size() > 1 and torch.cuda.is_available():
        return torch.device("cuda", env_local_rank() % torch.cuda.device_count())
    return None


def _timeout() -> datetime.timedelta:
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return datetime.timedelta(seconds=seconds)


class Group:
    """This process's place among the ranks of a run, and the collectives the trainer uses.

    A group of one (``world_size == 1``) never communicates: every method returns its input.

    Args:
        rank: this process's rank, 0 to ``world_size - 1``.
        world_size: processes in the run, W.
        device: where this rank trains (collectives on NCCL need CUDA tensors).
        owned: whether this group set up the process group (and so tears it down).
    """

    def __init__(
        self, rank: int = 0, world_size: int = 1, device: torch.device | None = None, owned=False
    ) -> None:
        self.rank, self.world_size, self.owned = rank, world_size, owned
        self.device = device or torch.device("cpu")

    @classmethod
    def from_env(cls, device: torch.device) -> Group:
        """Join torchrun's process group when ``WORLD_SIZE`` > 1 (or use one already set up);
        otherwise a group of one."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), _comm_device(device))
        if env_world_size() <= 1:
            return cls()
        if not dist.is_available():
            raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = _timeout()
        store, rank, world_size = next(dist.rendezvous("env://", timeout=timeout))
        # torchrun's c10d rendezvous keeps one store across restarts, and the keys that the
        # killed attempt's ranks left there (their addresses) would send the new ones to dead
        # ports: each attempt gets keys of its own. The attempt is counted in the store itself,
        # since TORCHELASTIC_RESTART_COUNT differs between nodes (only the failed node's grows).
        attempt = (store.add("rnnkit/ranks_joined", 1) - 1) // world_size
        store = dist.PrefixStore(f"rnnkit/attempt{attempt}", store)
        dist.init_process_group(
            backend, store=store, rank=rank, world_size=world_size, timeout=timeout
        )
        return cls(dist.get_rank(), dist.get_world_size(), _comm_device(device), owned=True)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run folder, logs and evaluates."""
        return self.rank == 0

    # -- the model -------------------------------------------------------------------------------
    def wrap(self, model: nn.Module, find_unused: bool = False) -> nn.Module:
        """``DistributedDataParallel`` over ``model`` (which it syncs from rank 0's weights).

        ``find_unused``: some parameters may get no gradient in a step (frozen layers); DDP then
        marks them ready itself (an extra walk of the autograd graph each step).
        """
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=find_unused
        )

    # -- collectives -----------------------------------------------------------------------------
    def sum(self, values: list[float]) -> list[float]:
        """The sum over ranks of each value (float64)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def step_totals(self, n: int, loss: Tensor, stop: bool, elapsed: float):
        """After a step's backward pass: the batch's total units over ranks, its mean loss
        (weighted by units), whether any rank was asked to stop, and rank 0's elapsed time
        (which times every rank's budget)."""
        loss_sum = float(loss.detach()) * n
        total_n, total_loss, stops, elapsed0 = self.sum(
            [n, loss_sum, float(stop), elapsed if self.is_main else 0.0]
        )
        return int(total_n), total_loss / max(total_n, 1), stops > 0, elapsed0

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (pickled: small things only)."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def main_decides(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0, its result on every rank; if it raises, rank 0 raises it and the
        others a ``PeerError``, instead of waiting for rank 0 at their next collective."""
        if not self.distributed:
            return fn()
        if self.is_main:
            try:
                value = fn()
            except BaseException as e:
                self.broadcast(("error", f"{type(e).__name__}: {e}"))
                raise
            return self.broadcast(("ok", value))[1]
        status, value = self.broadcast(None)
        if status == "error":
            raise PeerError(f"rank 0 stopped: {value}")
        return value

    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def close(self) -> None:
        """Leave the process group, if this group set it up."""
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()
            self.owned = False

    def _object_device(self) -> torch.device | None:
        return self.device if self.device.type == "cuda" else None


def _comm_device(device: torch.device) -> torch.device:
    """The device the collectives' tensors live on: this rank's GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return device if device.index is not None else torch.device("cuda", env_local_rank())
    return torch.device("cpu")
