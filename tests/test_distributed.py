"""Training under torchrun on the CPU (gloo): 2 processes train the run that 1 process trains
with the same flags (``--batch-size`` is the global batch), one run folder, resume, restarts, and
two "nodes" on this machine.

Each test starts ``python -m torch.distributed.run`` in a subprocess, on tiny models and a few
steps; the ones that start torchrun more than twice are marked slow.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.training import checkpoint as ckpt
from rnnkit.training.batching import BatchPlan, python_shuffle
from rnnkit.training.distributed import Group
from rnnkit.training.trainer import LAST, METRICS

SRC = str(Path(__file__).resolve().parents[1] / "src")
LM = ["--bptt", "16", "--hidden-size", "32", "--num-layers", "2", "--embedding-size", "16"]
COMMON = ["--device", "cpu", "--no-progress", "--log-every", "1", "--eval-max-tokens", "3000"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], nproc: int = 2, launcher: list[str] | None = None, **kw):
    """``torchrun --nproc_per_node N -m rnnkit ARGS`` (standalone: a free port of its own)."""
    launcher = launcher or ["--standalone", f"--nproc_per_node={nproc}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "rnnkit", *args]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=180, **kw)


def start(cmd: list[str], **kw) -> subprocess.Popen:
    """A torchrun in a session of its own, so that ``end`` also reaches its workers."""
    return subprocess.Popen(cmd, env=env(), start_new_session=True, **kw)


def end(proc: subprocess.Popen) -> None:
    """Kill torchrun and every worker it started (killed alone, it leaves them running)."""
    with contextlib.suppress(ProcessLookupError):  # all ended already
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def one_process(args: list[str]):
    cmd = [sys.executable, "-m", "rnnkit", *args]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=180)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / METRICS).read_text().splitlines()]


def train_losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records(run) if "loss" in r}


def val_losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in records(run) if "val_loss" in r}


def assert_same_run(one: Path, two: Path, rel: float = 1e-4) -> None:
    """The same logged losses, step for step, within floating-point tolerance."""
    a, b = train_losses(one), train_losses(two)
    assert a.keys() == b.keys() and len(a) > 2
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=rel), step
    va, vb = val_losses(one), val_losses(two)
    assert va.keys() == vb.keys() and va
    for step in va:
        assert vb[step] == pytest.approx(va[step], rel=rel), step


def assert_one_copy_of_each_line(run: Path) -> None:
    seen = [(r["step"], "loss" in r) for r in records(run)]
    assert len(seen) == len(set(seen))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text((stdlib / "argparse.py").read_text()[:60_000])
    return path


def lm_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "lm", "--data", str(corpus), *LM, *COMMON, "--out", str(out), *extra]


# -- the language model ---------------------------------------------------------------------------
def test_lm_two_processes_train_the_run_of_one(tmp_path, corpus, capsys):
    budget = ["--batch-size", "8", "--max-steps", "6", "--eval-every", "3", "--lr", "1e-2"]
    assert main(lm_args(corpus, tmp_path / "one", *budget, "--warmup-steps", "2")) == 0
    two = ok(torchrun(lm_args(corpus, tmp_path / "two", *budget, "--warmup-steps", "2")))
    assert_same_run(tmp_path / "one", tmp_path / "two")
    assert_one_copy_of_each_line(tmp_path / "two")
    assert two.stdout.count("done: 6 steps") == 1  # rank 0 alone reports
    # one checkpoint holding each rank's carried state and random state
    tensors, meta = ckpt.load(tmp_path / "two" / LAST)
    assert meta["world_size"] == 2
    one_carry = ckpt.strip_prefix("carry", ckpt.load(tmp_path / "one" / LAST)[0])
    for r in (0, 1):
        carry = ckpt.strip_prefix(f"rank{r}.carry", tensors)
        assert carry.keys() == one_carry.keys()
        for k, v in carry.items():  # rank r carries streams r, r + 2, ... of the batch
            torch.testing.assert_close(v, one_carry[k][:, r::2], rtol=1e-4, atol=1e-5)
    # the run serves the run verbs as any other
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "two"), "--json"]) == 0
    assert "bpc" in capsys.readouterr().out
    assert main(["sample", str(tmp_path / "two")]) == 0
    assert capsys.readouterr().out.strip()


def test_resuming_with_another_number_of_processes_is_refused(tmp_path, corpus, capsys):
    budget = ["--batch-size", "4", "--max-steps", "2", "--eval-every", "2"]
    assert main(lm_args(corpus, tmp_path / "run", *budget)) == 0
    tensors, meta = ckpt.load(tmp_path / "run" / LAST)  # as if 2 processes had saved it
    tensors = {f"rank{r}.{k}" if k.split(".")[0] in ("rng", "carry") else k: v
               for k, v in tensors.items() for r in (0, 1)}  # fmt: skip
    ckpt.save(tmp_path / "run" / LAST, tensors, {**meta, "world_size": 2})
    capsys.readouterr()
    assert main(lm_args(corpus, tmp_path / "run", "--resume", "--max-steps", "4")) == 2
    err = capsys.readouterr().err
    assert "was saved by 2 process(es)" in err and "resume it with 2" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_resumed_run_under_torchrun_equals_an_uninterrupted_one(tmp_path, corpus):
    budget = ["--batch-size", "4", "--eval-every", "3", "--checkpoint-every", "3"]
    ok(torchrun(lm_args(corpus, tmp_path / "full", *budget, "--max-steps", "6")))
    ok(torchrun(lm_args(corpus, tmp_path / "cut", *budget, "--max-steps", "3")))
    ok(torchrun(lm_args(corpus, tmp_path / "cut", "--resume", "--max-steps", "6")))
    a, b = ckpt.load(tmp_path / "full" / LAST)[0], ckpt.load(tmp_path / "cut" / LAST)[0]
    assert a.keys() == b.keys()
    for k in a:  # weights, optimizer, each rank's carried state and RNG
        assert torch.equal(a[k], b[k]), k
    assert train_losses(tmp_path / "full") == train_losses(tmp_path / "cut")


@pytest.mark.slow
def test_an_error_of_rank_0_ends_every_rank_with_one_message(tmp_path, corpus):
    budget = ["--batch-size", "4", "--max-steps", "2", "--eval-every", "2"]
    ok(torchrun(lm_args(corpus, tmp_path / "run", *budget)))
    again = torchrun(lm_args(corpus, tmp_path / "run", *budget))  # no --resume: refused
    assert again.returncode != 0
    assert again.stderr.count("already holds a run") == 1  # rank 1 ends quietly


@pytest.mark.slow
def test_sigterm_to_torchrun_saves_one_checkpoint_and_resume_continues(tmp_path, corpus):
    out = tmp_path / "run"
    args = lm_args(corpus, out, "--batch-size", "4", "--max-steps", "100000")
    args += ["--checkpoint-every", "100000", "--eval-every", "100000"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = start([*cmd, "-m", "rnnkit", *args], stderr=err)
        try:
            deadline = time.monotonic() + 120
            while not (out / METRICS).exists() or len(records(out)) < 5:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        finally:
            end(proc)
    stopped = ckpt.load(out / LAST)[1]["counters"]["step"]
    assert stopped == max(r["step"] for r in records(out))  # saved at the step it stopped
    assert "the checkpoint is saved" in (tmp_path / "stderr.txt").read_text()
    ok(torchrun(lm_args(corpus, out, "--resume", "--max-steps", "100000", "--time-budget", "2")))
    assert ckpt.load(out / LAST)[1]["counters"]["step"] > stopped


@pytest.mark.slow
def test_a_killed_rank_is_restarted_and_the_run_resumes(tmp_path, corpus):
    out = tmp_path / "run"
    args = lm_args(corpus, out, "--batch-size", "4", "--max-steps", "400")
    args += ["--checkpoint-every", "40", "--eval-every", "200"]
    launcher = ["--standalone", "--nproc_per_node=2", "--max-restarts=1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "rnnkit", *args]
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:  # a file, not a pipe that nobody reads while we wait
        proc = start(cmd, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 120
            while not (out / LAST).exists() and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            holder = json.loads((out / ".lock").read_text())["pid"]  # rank 0 holds the lock
            os.kill(holder, signal.SIGKILL)
            proc.wait(timeout=180)
        finally:
            end(proc)
    stderr = log.read_text()
    assert proc.returncode == 0, stderr[-3000:]
    assert "restarted by torchrun: resuming" in stderr
    assert ckpt.load(out / LAST)[1]["counters"]["step"] == 400
    steps = [r["step"] for r in records(out) if "loss" in r]
    assert steps == list(range(1, 401))  # the killed attempt's tail was dropped


@pytest.mark.slow
def test_two_nodes_with_c10d_rendezvous_train_the_run_of_one(tmp_path, corpus):
    budget = ["--batch-size", "8", "--max-steps", "4", "--eval-every", "2"]
    ok(one_process(lm_args(corpus, tmp_path / "one", *budget)))
    port = free_port()
    launcher = ["--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d"]
    launcher += [f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=rnnkit-test"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "rnnkit"]
    cmd += lm_args(corpus, tmp_path / "two", *budget)
    nodes = [start(cmd, stderr=subprocess.PIPE) for _ in range(2)]
    try:
        for node in nodes:
            _, err = node.communicate(timeout=180)
            assert node.returncode == 0, err.decode()[-3000:]
    finally:
        for node in nodes:
            end(node)
    assert_same_run(tmp_path / "one", tmp_path / "two")
    assert_one_copy_of_each_line(tmp_path / "two")


# -- classification -------------------------------------------------------------------------------
def sentiment_csv(path: Path, n: int) -> Path:
    words = ["the", "a", "film", "plot", "actor", "scene", "was", "is", "it", "and"]
    g = torch.Generator().manual_seed(0)
    lines = ["text,label"]
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        fill = [words[j] for j in torch.randint(0, len(words), (6,), generator=g).tolist()]
        fill.insert(int(torch.randint(0, 6, (1,), generator=g)), "great" if i % 2 else "awful")
        lines.append(f"{' '.join(fill)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_classify_two_processes_train_the_run_of_one(tmp_path):
    # 51 examples: 41 to train, so the last batch of 4 of a pass holds 1 and rank 1 stands in
    data = sentiment_csv(tmp_path / "reviews.csv", 51)
    args = ["train", "classify", "--data", str(data), "--hidden-size", "12", "--dropout", "0"]
    args += ["--embedding-size", "8", "--batch-size", "4", "--max-steps", "12", *COMMON]
    args += ["--eval-every", "6", "--warmup-steps", "2", "--lr", "1e-2"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0  # in this process: quicker
    ok(torchrun([*args, "--out", str(tmp_path / "two")]))
    sizes = json.loads((tmp_path / "one" / "config.json").read_text())["task"]["sizes"]
    assert sizes["train"] % 4 == 1 and sizes["train"] // 4 < 12  # a pass ends within the run
    assert_same_run(tmp_path / "one", tmp_path / "two")
    assert_one_copy_of_each_line(tmp_path / "two")
    assert main(["evaluate", str(tmp_path / "two"), "--json"]) == 0


@pytest.mark.slow
def test_classify_with_gradual_unfreezing_trains_the_run_of_one_in_two_processes(tmp_path):
    # frozen layers get no gradient: DDP must be told (find_unused_parameters) or step 2 fails
    data = sentiment_csv(tmp_path / "reviews.csv", 48)
    args = ["train", "classify", "--data", str(data), "--hidden-size", "12", "--dropout", "0"]
    args += ["--embedding-size", "8", "--batch-size", "4", "--max-steps", "8", *COMMON]
    args += ["--eval-every", "4", "--num-layers", "2", "--unfreeze-every", "2", "--lr-decay", "2"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    ok(torchrun([*args, "--out", str(tmp_path / "two")]))
    assert_same_run(tmp_path / "one", tmp_path / "two")


def other_task_data(folder: Path, task: str) -> list[str]:
    """Tiny data and flags for the tasks not tested above."""
    g = torch.Generator().manual_seed(0)
    if task == "forecast":
        rows = [
            f"{i},{math.sin(i / 5) + 0.1 * float(torch.rand((), generator=g))}" for i in range(300)
        ]
        (folder / "s.csv").write_text("t,y\n" + "\n".join(rows) + "\n")
        return ["--data", str(folder / "s.csv"), "--time-col", "t", "--target", "y",
                "--lookback", "12", "--horizon", "3"]  # fmt: skip
    words = ["".join("abcdef"[int(i)] for i in torch.randint(0, 6, (int(n),), generator=g))
             for n in torch.randint(2, 7, (200,), generator=g)]  # fmt: skip
    if task == "seq2seq":
        (folder / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
        return ["--data", str(folder / "pairs.tsv"), "--embedding-size", "8"]
    rows = [f"{'ab'[len(w) % 2]},{w}" for w in words]
    (folder / "words.csv").write_text("kind,word\n" + "\n".join(rows) + "\n")
    return ["--data", str(folder / "words.csv"), "--condition-col", "kind",
            "--target-col", "word", "--embedding-size", "8"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("task", ["forecast", "seq2seq", "generate"])
def test_every_other_task_trains_the_run_of_one_in_two_processes(tmp_path, task):
    args = ["train", task, *other_task_data(tmp_path, task), *COMMON, "--max-steps", "6"]
    args += ["--eval-every", "3", "--batch-size", "8", "--hidden-size", "16", "--dropout", "0"]
    ok(one_process([*args, "--out", str(tmp_path / "one")]))
    ok(torchrun([*args, "--out", str(tmp_path / "two")]))
    assert_same_run(tmp_path / "one", tmp_path / "two")
    assert_one_copy_of_each_line(tmp_path / "two")


# -- the pieces -----------------------------------------------------------------------------------
def test_a_sharded_plan_splits_each_batch_without_overlap():
    lengths = [len(str(i)) for i in range(23)]
    whole = BatchPlan(lengths, 6, python_shuffle)
    shards = [BatchPlan(lengths, 6, python_shuffle) for _ in range(3)]
    for r, plan in enumerate(shards):
        plan.shard(r, 3)
    for step in range(8):
        parts = [plan(step) for plan in shards if not plan.is_stand_in(step)]
        assert sorted(i for p in parts for i in p) == sorted(whole(step))
    # 23 = 3 * 6 + 5 ... the last batch of a pass is 5 long: all ranks have a share
    short = [s for s in range(4) if len(whole(s)) < 3]
    assert not short or all(shards[2].is_stand_in(s) for s in short)


def test_one_process_has_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    g = Group.from_env(torch.device("cpu"))
    assert not g.distributed and g.is_main and g.sum([1.0, 2.0]) == [1.0, 2.0]
    assert g.broadcast("x") == "x" and g.gather(3) == [3]
    assert not torch.distributed.is_initialized()
    model = torch.nn.Linear(2, 2)
    assert g.wrap(model) is model


class _TokenModel(torch.nn.Module):
    """The parts of a classifier that ``layer_groups`` cuts: embedding, rnn, head."""

    def __init__(self) -> None:
        super().__init__()
        import rnnkit

        self.embedding = torch.nn.Embedding(7, 4)
        self.rnn = rnnkit.LSTM(4, 5, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(5, 2)

    def forward(self, x):
        return self.head(self.rnn(self.embedding(x))[0][:, -1])


def _unfreeze_steps(find_unused: bool) -> int:
    """Steps of gradual unfreezing that DDP (over a gloo group of one, which reduces as any
    group does) lets through; the wrap is the trainer's, asked as a 2-process group would."""
    from rnnkit.training.schedules import layer_groups, set_trainable, trainable_from
    from rnnkit.training.trainer import wrap_model

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1
    )
    try:
        model = _TokenModel()
        groups = layer_groups(model)
        ddp = wrap_model(model, Group(0, 2), find_unused)
        assert isinstance(ddp, torch.nn.parallel.DistributedDataParallel)
        x = torch.randint(0, 7, (3, 6))
        for step in range(4):
            set_trainable(groups, trainable_from(step, len(groups), 1))
            try:
                ddp(x).sum().backward()
            except RuntimeError:
                return step
        assert all(p.grad is not None for p in model.parameters())  # all unfrozen by now
        return 4
    finally:
        torch.distributed.destroy_process_group()


def test_gradual_unfreezing_trains_under_ddp():
    from types import SimpleNamespace

    from rnnkit.tasks.classify.task import ClassifyTask
    from rnnkit.tasks.classify.transfer import TransferConfig

    # the classifier asks DDP to look for frozen parameters exactly when it freezes some
    task = SimpleNamespace(transfer=TransferConfig(unfreeze_every=2))
    assert ClassifyTask.unused_parameters.fget(task) is True
    task.transfer = TransferConfig()
    assert ClassifyTask.unused_parameters.fget(task) is False
    assert _unfreeze_steps(find_unused=False) < 4  # DDP waits for the frozen layers' gradients
    assert _unfreeze_steps(find_unused=True) == 4
