"""One training loop for every task: budgets, schedule, clipping, evaluation, checkpoints, logs.

The trainer knows nothing about text, classes or translation. A *task* supplies the model, the
batches, the loss and the evaluation (see ``Task``); the trainer runs them. Three seams are kept
apart for data-parallel training: ``build_optimizer``, ``wrap_model`` and the task's
``shard``. Under ``torchrun`` with several processes the run is trained with
DistributedDataParallel; rank 0 alone writes the run folder (``rnnkit.training.distributed``
says how the ranks agree). Nothing is global: two trainers can run in one process
(on different run folders: a lock keeps a second trainer off a folder in use).

A run stops cleanly on SIGINT, SIGTERM or SIGHUP: the step under way is finished and a checkpoint
is saved at that step boundary, so a resumed run equals an uninterrupted one bit for bit (on the
CPU). A non-finite loss, gradient norm or validation loss stops the run before any checkpoint
takes the bad weights (or, with ``nan_policy="skip"``, skips that batch's update).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.training import checkpoint as ckpt
from rnnkit.training.config import TrainConfig
from rnnkit.training.distributed import Group, PeerError, local_cuda_device, restarted
from rnnkit.training.interrupts import StopRequest
from rnnkit.training.run_lock import RunLock
from rnnkit.training.task import Task
from rnnkit.training.tensorboard import FOLDER as TENSORBOARD
from rnnkit.training.tensorboard import TensorBoardLog, require_tensorboard

LAST = "checkpoint.safetensors"
BEST = "best.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
MAX_SKIPS_IN_A_ROW = 10
"""With ``nan_policy="skip"``, the run stops after more bad batches than this in a row."""


def resolve_device(name: str) -> torch.device:
    """``--device``: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (CUDA when present), checked
    to exist on this machine; anything else is a ``ValueError`` naming the flag and the value."""
    if name in ("auto", "cuda") and local_cuda_device() is not None:
        return local_cuda_device()  # under torchrun: this rank's GPU, cuda:LOCAL_RANK
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:  # torch.device also takes "0" (a CUDA ordinal) and types that cannot hold a model
        device = torch.device(name) if isinstance(name, str) and name.strip() == name else None
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps") or name.isdigit():
        raise ValueError(f"--device must be cpu, cuda, cuda:N, mps or auto; got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s)")
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and not (mps is not None and mps.is_available()):
        raise ValueError(f"--device {name}: MPS is not available on this machine")
    return device


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, scaled: list[dict] | None = None
) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not biases, norms or embeddings' rows... all 2-D).

    ``scaled``: parameter groups with an ``lr_scale`` each (a task's ``param_groups``), each
    split the same way; default one group of all the model's parameters at scale 1.
    """
    groups = []
    for group in scaled or [{"params": list(model.parameters()), "lr_scale": 1.0}]:
        params = [p for p in group["params"] if p.requires_grad]
        for part, decay in (
            ([p for p in params if p.dim() >= 2], cfg.weight_decay),
            ([p for p in params if p.dim() < 2], 0.0),
        ):
            groups.append({"params": part, "weight_decay": decay, "lr_scale": group["lr_scale"]})
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def wrap_model(
    model: nn.Module, group: Group | None = None, find_unused: bool = False
) -> nn.Module:
    """DistributedDataParallel over the model when ``group`` spans several processes; the
    model itself in one process. ``find_unused``: see ``Group.wrap`` (``Task.unused_parameters``).
    """
    return model if group is None else group.wrap(model, find_unused)


def bare(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (itself when not wrapped)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def learning_rate(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_lr_ratio`` as the budget runs out."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


@dataclass
class Counters:
    """Where a run stands; saved in every checkpoint."""

    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0
    best_val: float = math.inf
    """The best validation figure so far (the task's ``monitor``, by default the loss)."""
    best_step: int = -1
    best_loss: float = math.inf
    """The validation loss at the best step: it breaks ties of a monitored figure other than the
    loss (two checkpoints with the same accuracy: the one with the lower loss is better)."""
    evals_without_gain: int = 0
    stopped_early: bool = False
    skipped: int = 0
    """Batches whose update was skipped for a non-finite loss or gradient (``nan_policy``)."""
    skipped_in_row: int = 0


@dataclass
class RunResult:
    run_dir: Path
    counters: Counters
    last_val: dict = field(default_factory=dict)
    interrupted: bool = False
    signal: int | None = None
    """The signal that stopped the run (SIGINT, SIGTERM, SIGHUP); ``None`` if none did."""
    unit: str = "items"
    """What the run's ``tokens`` counter counts (the task's ``unit``)."""
    rank: int = 0
    """The process's rank under torchrun (0 in one process): only rank 0 reports."""


def rng_tensors(device: torch.device) -> dict[str, Tensor]:
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def restore_rng(tensors: dict[str, Tensor], device: torch.device) -> None:
    torch.set_rng_state(tensors["cpu"])
    if device.type == "cuda" and "cuda" in tensors:
        torch.cuda.set_rng_state(tensors["cuda"], device)


class Trainer:
    """Run a task under a ``TrainConfig``; see the module docstring.

    ``callbacks`` are called as ``fn(trainer, record)`` after every logged step; one that
    raises ``KeyboardInterrupt`` stops the run the way Ctrl-C does: the step finishes (with its
    evaluation, if due) and a checkpoint is saved.
    """

    def __init__(
        self,
        task: Task,
        cfg: TrainConfig,
        callbacks: tuple[Callable[[Trainer, dict], None], ...] = (),
    ) -> None:
        # the task's budget for a run given none (said at the start of a fresh run)
        self.default_budget = {} if cfg.budget_given else dict(task.default_budget)
        if self.default_budget:
            cfg = copy.copy(cfg)  # the caller's config stays as it was given
            for name, value in self.default_budget.items():
                setattr(cfg, name, value)
        self.task, self.cfg, self.callbacks = task, cfg, callbacks
        self.run_dir = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        self.monitor: tuple[str, str] = task.monitor
        self.unit: str = task.unit
        self.loss_label: str = task.loss_label
        # the worst figure to start from, so that a NaN never counts as the best
        self.counters = Counters(best_val=-math.inf if self.monitor[1] == "max" else math.inf)
        self._saved_step: int | None = None  # the step of the last checkpoint on disk
        self._board: TensorBoardLog | None = None
        self.group = Group()  # one process until ``run`` joins torchrun's group
        self._stop_agreed = False  # under torchrun: whether the ranks agreed to stop

    # -- budgets ---------------------------------------------------------------------------------
    def progress(self) -> float:
        """The fraction of the budget spent: the most advanced of steps, tokens and time."""
        c, cfg = self.counters, self.cfg
        parts = [0.0]
        if cfg.max_steps:
            parts.append(c.step / cfg.max_steps)
        if cfg.token_budget:
            parts.append(c.tokens / cfg.token_budget)
        if cfg.time_budget_s:
            parts.append(c.elapsed / cfg.time_budget_s)
        return max(parts)

    # -- checkpoints -----------------------------------------------------------------------------
    def _save_last(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        weights = bare(model).state_dict()
        if ckpt.nonfinite(weights):  # never let bad weights replace the last good checkpoint
            raise self._failure(
                self._stopped(f"the weights became non-finite at step {self.counters.step}")
            )
        own = {
            **ckpt.with_prefix("rng", rng_tensors(self.device)),
            **ckpt.with_prefix("carry", self.task.carry()),
        }
        g = self.group
        if g.distributed:  # each rank's random and carried state, under rank{r}.
            parts = g.gather({k: v.cpu() for k, v in own.items()})
            own = (
                {}
                if parts is None
                else {
                    k: v
                    for r, part in enumerate(parts)
                    for k, v in ckpt.with_prefix(f"rank{r}", part).items()
                }
            )
        self._saved_step = self.counters.step
        if not g.is_main:
            return
        opt_tensors, opt_meta = ckpt.optimizer_to_flat(optimizer)
        tensors = {
            **ckpt.with_prefix("model", weights),
            **ckpt.with_prefix("optim", opt_tensors),
            **own,
        }
        meta = {"counters": asdict(self.counters), "optimizer": opt_meta}
        if g.distributed:
            meta["world_size"] = g.world_size
        ckpt.save(self.run_dir / LAST, tensors, meta)
        if self._board is not None:
            self._board.flush()

    def _load_last(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        tensors, meta = ckpt.load(self.run_dir / LAST)
        g, saved = self.group, meta.get("world_size", 1)
        if saved != g.world_size:
            raise ckpt.CheckpointError(
                f"{self.run_dir / LAST} was saved by {saved} process(es) and holds each one's "
                f"random and carried state: resume it with {saved} (torchrun --nnodes x "
                f"--nproc_per_node = {saved}), not {g.world_size}"
            )
        own = tensors if saved == 1 else ckpt.strip_prefix(f"rank{g.rank}", tensors)
        try:
            model.load_state_dict(ckpt.strip_prefix("model", tensors))
            ckpt.optimizer_from_flat(
                optimizer, ckpt.strip_prefix("optim", tensors), meta["optimizer"]
            )
            self.counters = Counters(**meta["counters"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise ckpt.CheckpointError(
                f"checkpoint {self.run_dir / LAST} does not fit this run's model: {e}"
            ) from e
        restore_rng(ckpt.strip_prefix("rng", own), self.device)
        self.task.restore_carry(
            {k: v.to(self.device) for k, v in ckpt.strip_prefix("carry", own).items()}
        )
        self._saved_step = self.counters.step

    def _save_best(self, model: nn.Module, val: dict) -> None:
        if not self.group.is_main:
            return
        ckpt.save(
            self.run_dir / BEST,
            ckpt.with_prefix("model", bare(model).state_dict()),
            {"step": self.counters.step, "val": val},
        )

    # -- logs ------------------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        if not self.group.is_main:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._board is not None:
            self._board.write(record)

    def _trim_log(self) -> None:
        """On resume, drop records written after the checkpoint (the killed run's tail)."""
        path = self.run_dir / METRICS
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.counters.step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
        ckpt.atomic_write_bytes(path, ("\n".join(keep) + "\n" if keep else "").encode())

    # -- the loop --------------------------------------------------------------------------------
    def _prepare_run_dir(self) -> bool:
        """Ready the (locked) run folder; whether there is a checkpoint to resume from."""
        cfg, run_dir = self.cfg, self.run_dir
        removed = ckpt.remove_stale_temporaries(run_dir)
        if removed:
            _note(f"removed {len(removed)} unfinished file(s) that a killed run left in {run_dir}")
        has_config = (run_dir / CONFIG).exists()
        if cfg.resume:
            if (run_dir / LAST).exists():
                return True
            if not has_config:
                raise ckpt.CheckpointError(f"--resume: no run in {run_dir} (no {CONFIG})")
            _note(
                f"--resume: the run in {run_dir} stopped before its first checkpoint; "
                "starting it again from step 0"
            )
            self._forget_partial_run()
            return False
        if (run_dir / LAST).exists():
            raise FileExistsError(
                f"{run_dir} already holds a run; continue it with --resume, or choose "
                "another --out (nothing there was changed)"
            )
        if has_config:
            _note(
                f"{run_dir} holds a run that stopped before its first checkpoint; "
                "starting afresh there"
            )
            self._forget_partial_run()
        # ``log`` says how metrics.jsonl reads: what ``tokens`` and ``tokens_per_s`` count, what
        # the loss is and which figure picks the best checkpoint (``rnnkit plot`` labels by it)
        log = {"unit": self.unit, "loss_label": self.loss_label, "monitor": list(self.monitor)}
        config = {"task": self.task.describe(), "train": asdict(cfg), "log": log}
        ckpt.atomic_write_json(run_dir / CONFIG, config)
        return False

    def _forget_partial_run(self) -> None:
        """Drop what a run killed before its first checkpoint wrote, but its config."""
        for name in (METRICS, BEST, "loss.png"):
            (self.run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(self.run_dir / TENSORBOARD, ignore_errors=True)

    def evaluate(self, model: nn.Module, split: str = "val") -> dict:
        """The task's metrics on ``split``; under torchrun rank 0 computes them on the whole
        split (the figure one process gets) while the others wait for them."""

        def metrics() -> dict:
            model.eval()
            with torch.no_grad(), self._autocast():
                out = self.task.evaluate(bare(model), split, self.cfg.eval_max_tokens)
            model.train()
            return out

        return self.group.main_decides(metrics)

    def _autocast(self):
        enabled = self.cfg.amp and self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def run(self) -> RunResult:
        """Train until a budget is spent, early stopping, or a stop signal; see the class."""
        ckpt.require_safetensors()  # before anything is written: no half-made run folder
        if self.cfg.tensorboard:
            require_tensorboard()
        self.group = g = Group.from_env(self.device)
        try:
            if restarted() and not self.cfg.resume and (self.run_dir / LAST).exists():
                # torchrun --max-restarts started the workers again: continue the run they left
                self.cfg = dataclasses.replace(self.cfg, resume=True)
                self._note(f"restarted by torchrun: resuming {self.run_dir} from its checkpoint")
            if self.cfg.resume and not self.run_dir.is_dir():
                raise ckpt.CheckpointError(f"--resume: no run folder {self.run_dir}")
            if g.distributed and self.cfg.batch_size % g.world_size:
                raise ValueError(
                    f"--batch-size {self.cfg.batch_size} (the global batch) must divide among "
                    f"{g.world_size} processes"
                )
            if g.distributed:
                self.task.shard(g.rank, g.world_size)
            with contextlib.ExitStack() as stack:
                if g.is_main:  # rank 0 alone holds the folder and writes in it
                    self.run_dir.mkdir(parents=True, exist_ok=True)
                    stack.enter_context(RunLock(self.run_dir))
                stop = stack.enter_context(StopRequest())
                result = self._run(stop)
                # every rank returns with the run folder complete; still inside StopRequest, as
                # torchrun's SIGTERM reaches the ranks one after the other
                g.barrier()
            return result
        finally:
            g.close()
            self.group = Group()

    def _run(self, stop: StopRequest) -> RunResult:
        cfg, g = self.cfg, self.group
        if self.default_budget and not cfg.resume:
            flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in self.default_budget.items())
            self._note(
                f"budget: {self.task.kind}'s default ({flags}); --max-steps, --time-budget or "
                "--token-budget sets your own"
            )
        resume_from_checkpoint = g.main_decides(self._prepare_run_dir)
        torch.manual_seed(cfg.seed)
        model = self.task.build_model().to(self.device)
        if g.rank > 0:  # the same initial weights, but each rank its own dropout
            torch.manual_seed(cfg.seed + 1_000_003 * g.rank)
        optimizer = build_optimizer(model, cfg, self.task.param_groups(model))
        if resume_from_checkpoint:
            self._load_last(model, optimizer)
        if cfg.resume and g.is_main:
            self._trim_log()
        c = self.counters
        model = wrap_model(model, g, self.task.unused_parameters)
        model.train()
        if cfg.tensorboard and g.is_main:
            resumed_at = c.step if resume_from_checkpoint else None
            self._board = TensorBoardLog(self.run_dir, self.unit, resumed_at)
        bar = self._progress_bar()
        last_val: dict = {}
        try:
            last_val = self._loop(model, optimizer, stop, bar)
        except KeyboardInterrupt:
            # only a KeyboardInterrupt raised by the task's own code lands here (the signals set
            # ``stop``); it may have cut a step in two, so the last checkpoint is left as it is
            kept = f"step {self._saved_step}" if self._saved_step is not None else "none yet"
            self._note(
                f"interrupted in the middle of step {c.step + 1}; the last checkpoint "
                f"({kept}) is kept: continue with --resume --out {self.run_dir}"
            )
            return RunResult(self.run_dir, c, last_val, True, signal.SIGINT, self.unit, g.rank)
        finally:
            if bar is not None:
                bar.close()
            if self._board is not None:
                self._board.close()
                self._board = None
        interrupted = self._stopping(stop) and self.progress() < 1.0 and not c.stopped_early
        if interrupted:
            if self._saved_step != c.step:
                self._save_last(model, optimizer)
            why = signal.Signals(stop.signum).name if stop.signum else "stopped"
            self._note(
                f"{why} at step {c.step}; the checkpoint is saved: continue with "
                f"--resume --out {self.run_dir}"
            )
        if g.is_main:
            self._plot()
        signum = stop.signum if interrupted else None
        return RunResult(self.run_dir, c, last_val, interrupted, signum, self.unit, g.rank)

    def _loop(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, stop: StopRequest, bar
    ) -> dict:
        """Steps until a budget, early stopping or a stop request; the last validation."""
        cfg, c = self.cfg, self.counters
        # an infinite bound measures the norm without clipping (the factor is exactly 1)
        bound = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        last_val: dict = {}
        since = time.perf_counter()
        window_tokens, window_start = 0, since
        # ``stop`` is read only here, between steps: a checkpoint saved now holds one step's
        # weights, optimizer, carried state, RNG and counters together
        self._stop_agreed = False
        g = self.group
        while self.progress() < 1.0 and not c.stopped_early and not self._stopping(stop):
            lr = learning_rate(cfg, c.step, self.progress())
            lr = self.task.before_step(model, c.step, self.progress(), lr)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            batch = self.task.train_batch(c.step)
            with self._autocast():
                loss, n = self.task.batch_loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            if g.distributed:
                # weigh each rank's mean loss by its share of the batch's units, so that the
                # averaged gradient is that of the whole batch's mean (uneven or stand-in shares)
                n = 0 if self.task.is_stand_in(c.step) else n
                (total,) = g.sum([n])
                (loss * (n * g.world_size / max(total, 1))).backward()
            else:
                loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), bound)
            now = time.perf_counter()
            c.elapsed += now - since
            since = now
            if g.distributed:  # the figures and decisions every rank must share
                n, mean_loss, self._stop_agreed, c.elapsed = g.step_totals(
                    n, loss, stop.requested, c.elapsed
                )
                loss = torch.tensor(mean_loss)
            finite = bool(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm))  # one sync
            if finite:
                optimizer.step()
            c.step += 1
            if not finite:
                self._bad_batch(loss.item(), grad_norm.item())
            else:
                c.skipped_in_row = 0
                c.tokens += n
                window_tokens += n
                if c.step % cfg.log_every == 0 or c.step == 1:
                    rate = window_tokens / max(now - window_start, 1e-9)
                    window_tokens, window_start = 0, now
                    record = {
                        "step": c.step,
                        "loss": round(loss.item(), 6),
                        "lr": lr,
                        "grad_norm": round(float(grad_norm), 4),
                        "tokens": c.tokens,
                        "tokens_per_s": round(rate, 1),
                        "elapsed": round(c.elapsed, 2),
                    }
                    self._log(record)
                    self._update_bar(bar, record)
                    for fn in self.callbacks if g.is_main else ():
                        try:
                            fn(self, record)
                        except KeyboardInterrupt:
                            stop.request()
            done = self.progress() >= 1.0
            if c.step % cfg.eval_every == 0 or done:
                last_val = self._validate(model)
                # evaluation time is not training time, for the budget nor for tokens/s
                window_start += time.perf_counter() - since
                since = time.perf_counter()
            if c.step % cfg.checkpoint_every == 0 or done or c.stopped_early:
                self._save_last(model, optimizer)
        return last_val

    def _stopping(self, stop: StopRequest) -> bool:
        """Whether a stop was asked for: in one process by a signal or callback now; under
        torchrun on any rank, as the ranks agreed at the last step (all stop together)."""
        return self._stop_agreed if self.group.distributed else stop.requested

    def _note(self, text: str) -> None:
        if self.group.is_main:
            _note(text)

    def _failure(self, message: str) -> Exception:
        """A non-finite figure's error: every rank stops (they agree on the figure), rank 0
        says why and the others end quietly."""
        if self.group.is_main:
            return FloatingPointError(message)
        return PeerError(f"rank 0 stopped: {message}")

    def _bad_batch(self, loss: float, grad_norm: float) -> None:
        """A batch with a non-finite loss or gradient: stop, or (``nan_policy="skip"``) count
        it; its update was not applied."""
        c = self.counters
        what = (
            f"the training loss became {loss} at step {c.step}"
            if not math.isfinite(loss)
            else f"the gradient norm became {grad_norm} at step {c.step} (loss {loss:.4g})"
        )
        if self.cfg.nan_policy == "stop":
            self._log({"step": c.step, "stopped": what})
            raise self._failure(self._stopped(what))
        c.skipped += 1
        c.skipped_in_row += 1
        self._log({"step": c.step, "skipped": what})
        if c.skipped_in_row > MAX_SKIPS_IN_A_ROW:
            raise self._failure(
                self._stopped(f"{what}, the {c.skipped_in_row}th batch skipped in a row")
            )
        self._note(f"{what}: batch skipped ({c.skipped_in_row} in a row, {c.skipped} in all)")
        # a state carried out of a bad batch would spoil every batch after it: start afresh
        if ckpt.nonfinite(self.task.carry()):
            self.task.restore_carry({})

    def _stopped(self, what: str) -> str:
        """The one-line error for a run stopped by a non-finite figure."""
        kept = (
            f"its last checkpoint (step {self._saved_step}) is kept"
            if self._saved_step is not None
            else "no checkpoint was saved yet"
        )
        return (
            f"{what}; the run stopped and {kept}: lower --lr or --grad-clip, then --resume "
            f"--out {self.run_dir}"
        )

    def _validate(self, model: nn.Module) -> dict:
        c, cfg = self.counters, self.cfg
        val = self.evaluate(model, "val")
        record = {"step": c.step, **{f"val_{k}": v for k, v in val.items()}}
        self._log(record)
        if not math.isfinite(val["loss"]):
            raise self._failure(
                self._stopped(f"the validation loss became {val['loss']} at step {c.step}")
            )
        key, mode = self.monitor
        value = val[key]
        better = value < c.best_val if mode == "min" else value > c.best_val
        tie_won = key != "loss" and value == c.best_val and val["loss"] < c.best_loss
        if better or tie_won:
            c.best_val, c.best_step, c.evals_without_gain = value, c.step, 0
            c.best_loss = val["loss"]
            self._save_best(model, val)
        else:
            c.evals_without_gain += 1
            if cfg.patience is not None and c.evals_without_gain >= cfg.patience:
                c.stopped_early = True
        return val

    # -- progress and plot -----------------------------------------------------------------------
    def _progress_bar(self):
        if not self.cfg.progress or not self.group.is_main:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        fmt = "{desc}{percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"
        bar = tqdm(
            total=1000,
            desc=f"train {self.task.kind} ",
            bar_format=fmt,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        bar.n = int(1000 * self.progress())
        return bar

    def _update_bar(self, bar, record: dict) -> None:
        if bar is None:
            return
        bar.n = min(1000, int(1000 * self.progress()))
        rate = f"{record['tokens_per_s']:,.0f} {self.unit}/s"
        post = f"step {record['step']} loss {record['loss']:.3f} {rate}"
        if math.isfinite(self.counters.best_val):
            post += f" best val {self.monitor[0]} {self.counters.best_val:.3f}"
        bar.set_postfix_str(post, refresh=True)

    def _plot(self) -> None:
        try:
            from rnnkit.training.plot import plot_run
        except ImportError:  # pragma: no cover
            return
        try:
            plot_run(self.run_dir)
        except ImportError:
            print("(no loss plot: pip install 'rnnkit[plot]' for matplotlib)", file=sys.stderr)


def _note(text: str) -> None:
    print(text, file=sys.stderr)
