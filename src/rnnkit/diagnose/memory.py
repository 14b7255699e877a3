"""Synthetic memory tasks: the adding problem and the copy-memory task, and one training run.

Both tasks put the information the answer needs ``T`` steps before the answer is asked for, so
the longest ``T`` a cell solves measures how far its gradients carry.

- **Adding** (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015 and Arjovsky et al.
  2016): each step reads ``(value, marker)``, values uniform in [0, 1]; exactly two steps are
  marked, one in each half. The target, read from the last hidden state through a linear
  readout, is the sum of the two marked values. Answering 1 always gives MSE ``2/12 = 0.167``;
  *solved* is a test MSE below 0.01.
- **Copy memory** (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): ten symbols from
  {1..8}, then ``T - 1`` blanks (0), a delimiter (9) and ten more blanks; the model must output
  blanks throughout and the ten symbols over the last ten steps. A memoryless model that outputs
  blanks and then uniform guesses has a cross-entropy of ``10 ln 8 / (T + 20)`` per step;
  *solved* is at least 99 % of the recalled symbols right.

Training uses a plain loop rather than ``rnnkit.training.Trainer``: the benchmark runs dozens of
tiny models on data generated fresh every step, with no checkpoints, resumption, logging or run
folders to keep, and stops each run as soon as it is solved; the trainer's machinery would be
per-run overhead and files. The loop has the usual tricks: Adam, gradient-norm clipping, a
forget-gate bias of 1 for LSTMs (and no such bias for GRUs, torch's default), a linear readout.
Training runs on the fused kernels (``backend="native"``); the results are the same layers.

This module is one run (a task, a cell, a length); ``rnnkit.diagnose.memory_bench`` runs the
benchmark over cells and lengths (``rnnkit bench memory``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.diagnose.gradients import GradientFlow
from rnnkit.init import forget_gate_bias_
from rnnkit.layers.build import INITS, make_layer

TaskName = Literal["adding", "copy"]
COPY_SYMBOLS = 8  # symbols 1..8; 0 is the blank, 9 the delimiter
COPY_LENGTH = 10
ADDING_BASELINE = 2.0 / 12.0  # variance of the sum of two U(0, 1): MSE of always answering 1


def adding_batch(batch_size: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A batch of the adding problem: inputs ``(B, T, 2)`` and targets ``(B,)``."""
    if length < 2:
        raise ValueError(f"the adding problem needs a length of at least 2, got {length}")
    values = torch.rand(batch_size, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (batch_size,), generator=generator)
    second = torch.randint(half, length, (batch_size,), generator=generator)
    markers = torch.zeros(batch_size, length)
    rows = torch.arange(batch_size)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return torch.stack([values, markers], dim=-1), target


def copy_batch(batch_size: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A batch of the copy-memory task with delay ``T``: token ids in and out, ``(B, T + 20)``."""
    if length < 1:
        raise ValueError(f"the copy task needs a delay of at least 1, got {length}")
    n = COPY_LENGTH
    total = length + 2 * n
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (batch_size, n), generator=generator)
    x = torch.zeros(batch_size, total, dtype=torch.long)
    x[:, :n] = symbols
    x[:, n + length - 1] = COPY_SYMBOLS + 1  # the delimiter: recall starts at the next step
    y = torch.zeros(batch_size, total, dtype=torch.long)
    y[:, -n:] = symbols
    return x, y


def copy_baseline(length: int) -> float:
    """Per-step cross-entropy of the best memoryless strategy: ``10 ln 8 / (T + 20)``."""
    return COPY_LENGTH * math.log(COPY_SYMBOLS) / (length + 2 * COPY_LENGTH)


class MemoryModel(nn.Module):
    """An rnnkit layer with a linear readout: from the last hidden state (adding), or from every
    step (copy, whose one-hot inputs are fed as they are)."""

    def __init__(
        self,
        task: TaskName,
        cell: str,
        hidden_size: int,
        backend: str = "native",
        *,
        init: str = "default",
        max_dependency: int = 0,
    ):
        super().__init__()
        self.task = task
        in_size, out_size = (2, 1) if task == "adding" else (COPY_SYMBOLS + 2, COPY_SYMBOLS + 1)
        self.rnn = make_layer(
            cell,
            in_size,
            hidden_size,
            batch_first=True,
            init=init,
            max_dependency=max_dependency,
        )
        self.rnn.backend = backend
        if cell == "lstm" and init != "chrono":  # chrono sets the forget gate's bias itself
            forget_gate_bias_(self.rnn, 1.0)
        self.head = nn.Linear(hidden_size, out_size)

    def features(self, x: Tensor) -> Tensor:
        """The layer's input: the adding problem's pairs, or the copy task's one-hot symbols."""
        if self.task == "copy":
            return F.one_hot(x, COPY_SYMBOLS + 2).float()
        return x

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self.features(x))  # (B, T, H)
        if self.task == "adding":
            return self.head(out[:, -1]).squeeze(-1)  # (B,)
        return self.head(out)  # (B, T, classes)


@dataclass
class MemoryConfig:
    """How each benchmark run trains."""

    hidden_size: int = 64
    batch_size: int = 64
    lr: float | dict[str, float] = field(
        default_factory=lambda: {
            "rnn": 5e-3,
            "rnn_relu": 5e-3,
            "lstm": 1e-2,
            "gru": 1e-2,
            "lnlstm": 1e-2,
            "lngru": 1e-2,
            "mingru": 1e-2,
            "minlstm": 1e-2,
        }
    )
    """Adam's learning rate: one for all cells, or one per cell. The defaults are the better of
    1e-2 and 5e-3 for each cell on short adding problems (at 1e-2 the tanh RNN's loss spikes and
    it fails T = 20, which it solves at 5e-3; LSTM and GRU learn several times faster at 1e-2);
    the other gated cells take the LSTM's and GRU's 1e-2, untuned."""
    max_steps: int = 2500
    """The per-run step budget; a run stops earlier as soon as it is solved."""
    eval_every: int = 100
    eval_size: int = 500
    clip: float = 1.0
    seed: int = 0
    max_seconds: float | None = None
    """An optional wall-clock cap per run, on top of the step budget."""
    init: str = "default"
    """The layer's initialisation (``rnnkit.layers.make_layer``): default or chrono, say."""
    max_dependency: int | None = None
    """T_max of ``init="chrono"``; None: each run's own length T."""

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"--init must be one of {', '.join(INITS)}, got {self.init!r}")

    def lr_for(self, cell: str) -> float:
        if isinstance(self.lr, dict):
            if cell not in self.lr:
                raise ValueError(f"no learning rate for cell {cell!r} in {self.lr}")
            return self.lr[cell]
        return self.lr


LEFT_OUT = ("model", "flow")  # not figures: MemoryResult.as_dict leaves them out


@dataclass
class MemoryResult:
    task: str
    cell: str
    """The cell, and its initialisation when not the default (``lstm chrono``)."""
    length: int
    solved: bool
    steps: int
    seconds: float
    metric: float
    """Test MSE (adding) or recall accuracy (copy) at the end of the run."""
    loss: float
    baseline: float
    """The memoryless loss: 0.167 (adding) or 10 ln 8 / (T + 20) (copy)."""
    history: list[tuple[int, float]] = field(default_factory=list)
    """(step, metric) at each evaluation."""
    model: nn.Module | None = field(default=None, repr=False, compare=False)
    flow: GradientFlow | None = field(default=None, repr=False, compare=False)
    """The trained model's gradient flow on its own task (``memory_bench.trained_horizon``)."""

    def as_dict(self) -> dict:
        """The figures as JSON-ready values: the model left out, the flow's verdict as
        ``horizon`` when there is one."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in LEFT_OUT}
        if self.flow is not None:
            out["horizon"] = self.flow.verdicts[0].__dict__
        return out


def make_batch(task: TaskName, batch_size: int, length: int, generator: torch.Generator):
    if task == "adding":
        return adding_batch(batch_size, length, generator)
    if task == "copy":
        return copy_batch(batch_size, length, generator)
    raise ValueError(f"task must be adding or copy, got {task!r}")


def _loss(task: TaskName, pred: Tensor, y: Tensor) -> Tensor:
    """The training loss: MSE (adding), or cross-entropy over every step (copy)."""
    if task == "adding":
        return F.mse_loss(pred, y)
    return F.cross_entropy(pred.flatten(0, 1), y.flatten())


def _metric(task: TaskName, pred: Tensor, y: Tensor, loss: Tensor) -> float:
    """The task's metric: the MSE (``loss`` itself), or recall accuracy over the last ten
    steps."""
    if task == "adding":
        return float(loss)
    recalled = pred[:, -COPY_LENGTH:].argmax(-1) == y[:, -COPY_LENGTH:]
    return float(recalled.float().mean())


def is_solved(task: TaskName, metric: float) -> bool:
    return metric < 0.01 if task == "adding" else metric >= 0.99


def train_memory(
    task: TaskName,
    cell: str,
    length: int,
    cfg: MemoryConfig | None = None,
    *,
    keep_model: bool = False,
) -> MemoryResult:
    """Train one cell on one task at one length; stop when solved or out of budget.

    Everything is seeded from ``cfg.seed``: the weights, the training batches and a held-out
    test set of ``cfg.eval_size`` sequences (its own seed, the same for every cell).
    """
    cfg = cfg or MemoryConfig()
    torch.manual_seed(cfg.seed)
    chrono = cfg.init == "chrono"
    model = MemoryModel(
        task,
        cell,
        cfg.hidden_size,
        init=cfg.init,
        max_dependency=(cfg.max_dependency or length) if chrono else 0,
    )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr_for(cell))
    train_gen = torch.Generator().manual_seed(cfg.seed + 1)
    test_x, test_y = make_batch(
        task, cfg.eval_size, length, torch.Generator().manual_seed(10_000 + cfg.seed)
    )
    baseline = ADDING_BASELINE if task == "adding" else copy_baseline(length)
    history: list[tuple[int, float]] = []
    start = time.perf_counter()
    step, metric, test_loss, solved = 0, math.nan, math.nan, False
    while step < cfg.max_steps:
        model.train()
        x, y = make_batch(task, cfg.batch_size, length, train_gen)
        loss = _loss(task, model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        step += 1
        out_of_time = cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds
        if step % cfg.eval_every == 0 or step == cfg.max_steps or out_of_time:
            model.eval()
            with torch.no_grad():
                pred = model(test_x)
                t_loss = _loss(task, pred, test_y)
                metric = _metric(task, pred, test_y, t_loss)
            test_loss = float(t_loss)
            history.append((step, metric))
            if not math.isfinite(test_loss):
                break
            solved = is_solved(task, metric)
            if solved or out_of_time:
                break
    return MemoryResult(
        task=task,
        cell=cell if cfg.init == "default" else f"{cell} {cfg.init}",
        length=length,
        solved=solved,
        steps=step,
        seconds=time.perf_counter() - start,
        metric=metric,
        loss=test_loss,
        baseline=baseline,
        history=history,
        model=model if keep_model else None,
    )
