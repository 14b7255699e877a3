"""Fuzzing the command line: every verb, random files, random flag values, damaged run folders.

Each case calls ``rnnkit.cli.main.main(argv)`` in this process and must end in one of two ways:
a result (exit 0) or a clean error (exit 2, the last line of stderr ``rnnkit VERB: error: ...``,
from the CLI or from argparse). A traceback, a hang (no end within ``CASE_SECONDS``, or a try to
allocate more than ``MEMORY_HEADROOM``), or a failing call that changed a file of a run folder
that existed before it, fail the test.

The default run tries ``QUICK_CASES`` cases, the same ones each time; ``-m slow`` tries
``SLOW_CASES`` random ones. ``-s`` prints the count of each outcome. With ``RNNKIT_FUZZ_SURVEY=1``
the cases that go wrong are counted and listed instead of failing the test (see
``benchmarks/fuzz_counts.py``); ``RNNKIT_FUZZ_CASES=N`` sets the number of cases.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import tempfile
import traceback
from collections import Counter
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rnnkit.cli.main import main  # noqa: E402

CASE_SECONDS = 30
"""A case that runs longer than this counts as a hang (tiny runs end in about a second)."""
MEMORY_HEADROOM = 4 * 2**30
"""A case may map this much more memory than the process had before it; beyond, it fails."""
QUICK_CASES = int(os.environ.get("RNNKIT_FUZZ_CASES", 60))
SLOW_CASES = int(os.environ.get("RNNKIT_FUZZ_CASES", 1000))
SURVEY = os.environ.get("RNNKIT_FUZZ_SURVEY") == "1"
LOG = os.environ.get("RNNKIT_FUZZ_LOG")
"""Append every case (argv, outcome, detail) to this JSON-lines file."""
BAD = ("traceback", "hang", "lost", "messy error", "other exit")
OWNED_ELSEWHERE: tuple[re.Pattern, ...] = ()
"""Tracebacks whose fix belongs to code under rewrite: counted as ``known``, not failed (none now:
the stored configs are read through ``rnnkit.training.runs.stored_config``)."""

TINY = ["--hidden-size", "4", "--max-steps", "2", "--no-progress", "--device", "cpu"]
TINY_FLAGS = ["--eval-every", "1", "--batch-size", "4"]


# -- the good data of each task and the tiny runs trained on it ----------------------------------
def good_data(task: str) -> str:
    rng = random.Random(0)
    words = ["the", "a", "film", "plot", "good", "bad", "not", "great", "awful"]
    if task == "lm":
        return "hello world, the quick brown fox.\n" * 40
    if task == "classify":
        rows = []
        for _ in range(40):
            label = rng.choice(["pos", "neg"])
            text = " ".join(rng.choices(words, k=4)) + (" good" if label == "pos" else " bad")
            rows.append(f"{text},{label}\n")
        return "text,label\n" + "".join(rows)
    if task == "tag":
        lines = []
        for _ in range(40):
            tokens = rng.choices(words, k=4)
            tags = ["N" if w == "not" else "O" for w in tokens]
            lines.append(json.dumps({"tokens": tokens, "tags": tags}) + "\n")
        return "".join(lines)
    if task == "forecast":
        return "t,y\n" + "".join(f"{i},{10 + math.sin(i / 2):.3f}\n" for i in range(80))
    if task == "seq2seq":
        pairs = ("".join(rng.choices("abcdef", k=4)) for _ in range(40))
        return "".join(f"{w}\t{w[::-1]}\n" for w in pairs)
    if task == "generate":
        rows = (f"{rng.choice('xy')},{''.join(rng.choices('abc', k=3))}\n" for _ in range(40))
        return "kind,word\n" + "".join(rows)
    raise KeyError(task)


SUFFIX = {"lm": ".txt", "classify": ".csv", "tag": ".jsonl", "forecast": ".csv"}
SUFFIX |= {"seq2seq": ".tsv", "generate": ".csv"}
COLUMNS = {
    "tag": ["--text-col", "tokens", "--label-col", "tags"],
    "forecast": ["--time-col", "t", "--target", "y", "--lookback", "8", "--horizon", "2"],
    "generate": ["--condition-col", "kind", "--target-col", "word"],
}
TASKS = ("lm", "classify", "tag", "forecast", "seq2seq", "generate")


def train_argv(task: str, data: str, out: str) -> list[str]:
    return ["train", task, "--data", data, *COLUMNS.get(task, []), "--out", out, *TINY, *TINY_FLAGS]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny trained run per task, and the good data beside it."""
    root = tmp_path_factory.mktemp("fuzz-runs")
    made = {}
    for task in TASKS:
        data = root / f"{task}{SUFFIX[task]}"
        data.write_text(good_data(task))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(train_argv(task, str(data), str(root / task))) == 0
        made[task] = root / task
    return made


# -- running one case -----------------------------------------------------------------------------
class Hang(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` swallows it."""


def _on_alarm(signum, frame):
    raise Hang


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def snapshot(folder: Path | None) -> dict[str, str]:
    if folder is None or not folder.is_dir():
        return {}
    out = {}
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_case(argv: list[str], guard: Path | None = None) -> tuple[str, str]:
    """Run ``main(argv)``; return the outcome (``result``, ``clean error`` or one of ``BAD``) and
    a short detail (the error line, or where the traceback started)."""
    before = snapshot(guard)
    out, err = io.StringIO(), io.StringIO()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_bytes() + MEMORY_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    code, crash = None, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    except Hang:
        crash = ("hang", f"no end after {CASE_SECONDS} s")
    except BaseException as e:
        tb = traceback.extract_tb(e.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
        crash = ("traceback", f"{type(e).__name__} at {where}: {str(e)[:160]}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if crash is not None:
        return crash
    if code != 0:
        after = snapshot(guard)
        changed = sorted(name for name, digest in before.items() if after.get(name) != digest)
        if changed:
            return "lost", f"exit {code} but {changed} changed in {guard.name}"
    if code in (0, None):
        return "result", ""
    lines = err.getvalue().rstrip("\n").splitlines()
    last = lines[-1] if lines else ""
    if code != 2:
        return "other exit", f"exit {code}: {last[:200]}"
    verb = argv[0] if argv else ""
    if last.startswith(f"rnnkit {verb}: error: ") or (
        last.startswith("rnnkit") and ": error: " in last and "usage:" in err.getvalue()
    ):
        return "clean error", last[:200]
    return "messy error", (lines[-2:] if len(lines) > 1 else lines)[0][:200] + " | " + last[:200]


# -- what the fuzzer draws ------------------------------------------------------------------------
INT = ["-1", "0", "1", "2", "3", "99999999999999999999", "", "nan", "x", "1.5", "-0"]
SIZE = [*INT, "1000000000", "1048577", "100000"]
FLOAT = ["nan", "inf", "-inf", "-1", "0", "0.5", "1", "2", "1e308", "1e-320", "", "x", "-0.0"]
TEXT = ["", " ", "x", "nan", "a,b", "é", "-", "0", "\t", "lstm", "none", "1,2", "🙂" * 3]
DEVICE = ["-1", "0", "0.5", "", "cpu", "cuda", "cuda:7", "cuda:x", "mps", "auto", "meta", "xla"]
DURATION = ["0", "-1", "nan", "inf", "", "1s", "1e999", "5m", "x", "0.5h"]
CELL = [*TEXT, "gru", "rnn_relu", "lnlstm", "nope", "os:path", "missing.py:Cell", "rnnkit:RNN"]

TRAIN_FLAGS = {
    "--max-steps": ["0", "-1", "", "nan", "1", "x", "1.5"],
    "--time-budget": DURATION,
    "--token-budget": INT,
    "--seed": INT,
    "--device": DEVICE,
    "--batch-size": SIZE,
    "--lr": FLOAT,
    "--weight-decay": FLOAT,
    "--warmup-steps": INT,
    "--min-lr-ratio": FLOAT,
    "--grad-clip": FLOAT,
    "--eval-every": INT,
    "--eval-max-tokens": INT,
    "--patience": INT,
    "--checkpoint-every": INT,
    "--log-every": INT,
    "--nan-policy": [*TEXT, "skip"],
    "--cell": CELL,
    "--hidden-size": SIZE,
    "--dropout": FLOAT,
}
TASK_FLAGS = {
    "lm": {
        "--tokenizer": [*TEXT, "byte"],
        "--val-fraction": FLOAT,
        "--test-fraction": FLOAT,
        "--bptt": SIZE,
        "--num-layers": SIZE,
        "--embedding-size": SIZE,
    },
    "classify": {
        "--text-col": TEXT,
        "--label-col": TEXT,
        "--sequence-col": TEXT,
        "--time-col": TEXT,
        "--feature-cols": TEXT,
        "--tokens": [*TEXT, "char"],
        "--max-vocab": SIZE,
        "--min-count": INT,
        "--max-length": SIZE,
        "--split-fractions": [*TEXT, "0.5", "0.2,0.2", "0.9,0.9", "nan,0.1"],
        "--split-seed": INT,
        "--pooling": [*TEXT, "mean", "max", "attention"],
        "--num-layers": SIZE,
        "--embedding-size": SIZE,
        "--bidirectional": None,
        "--no-bidirectional": None,
    },
    "forecast": {
        "--time-format": [*TEXT, "%Y", "%d/%m"],
        "--features": TEXT,
        "--series-col": TEXT,
        "--lookback": SIZE,
        "--horizon": SIZE,
        "--mode": [*TEXT, "autoregressive"],
        "--quantiles": [*TEXT, "0.1,0.9", "nan", "0,1", "1.5", "0.5,0.5"],
        "--season": SIZE,
        "--test-size": SIZE,
        "--val-size": SIZE,
        "--transform": [*TEXT, "log", "sqrt"],
        "--reference": [*TEXT, "last", "seasonal"],
        "--fill": [*TEXT, "linear", "previous"],
        "--sort": None,
        "--stride": SIZE,
        "--blend": [*TEXT, "seasonal"],
        "--refit": None,
        "--members": SIZE,
        "--num-layers": SIZE,
    },
    "seq2seq": {
        "--source-level": [*TEXT, "word", "space"],
        "--target-level": [*TEXT, "word", "space"],
        "--val-fraction": FLOAT,
        "--test-fraction": FLOAT,
        "--split-seed": INT,
        "--max-vocab": SIZE,
        "--embedding-size": SIZE,
        "--encoder-layers": SIZE,
        "--decoder-layers": SIZE,
        "--bidirectional": None,
        "--attention": [*TEXT, "dot"],
        "--teacher-forcing": FLOAT,
        "--teacher-forcing-final": FLOAT,
        "--teacher-forcing-steps": INT,
    },
    "generate": {
        "--condition-col": TEXT,
        "--target-col": TEXT,
        "--target-level": [*TEXT, "word"],
        "--val-fraction": FLOAT,
        "--test-fraction": FLOAT,
        "--split-seed": INT,
        "--num-layers": SIZE,
        "--embedding-size": SIZE,
        "--condition-embedding-size": SIZE,
        "--no-init-state": None,
        "--no-feed": None,
    },
}
TASK_FLAGS["tag"] = TASK_FLAGS["classify"]
RUN_FLAGS = {
    "evaluate": {
        "--checkpoint": ["best", "last", "x"],
        "--device": DEVICE,
        "--split": ["train", "val", "test", "x"],
        "--json": None,
        "--origin-stride": INT,
        "--beam": INT,
        "--length-penalty": FLOAT,
        "--example": INT,
    },
    "predict": {
        "--checkpoint": ["best", "last"],
        "--device": DEVICE,
        "--top": INT,
        "--json": None,
        "--format": ["table", "csv", "json", "x"],
        "--beam": INT,
        "--length-penalty": FLOAT,
    },
    "sample": {
        "--device": DEVICE,
        "--prime": TEXT,
        "--length": INT,
        "--condition": [*TEXT, "x", "y"],
        "--num-samples": INT,
        "--max-length": INT,
        "--beam": INT,
        "--temperature": FLOAT,
        "--top-k": INT,
        "--top-p": FLOAT,
        "--argmax": None,
        "--seed": INT,
    },
    "backtest": {"--folds": ["-1", "0", "1", "2", "", "nan", "x"], "--json": None},
    "plot": {},
}
MODEL_FLAGS = {  # diagnose gradients and gates on fresh models
    "--steps": INT,
    "--batch-size": INT,
    "--seed": INT,
    "--checkpoint": ["best", "last", "x"],
    "--cell": [*CELL, "lstm,gru", "lstm,,gru"],
    "--init": [*TEXT, "orthogonal", "identity", "xavier"],
    "--gain": FLOAT,
    "--forget-bias": FLOAT,
    "--hidden-size": SIZE,
    "--input-size": SIZE,
    "--num-layers": SIZE,
}
HIDDEN_FLAGS = {
    "--checkpoint": ["best", "last", "x"],
    "--text": TEXT,
    "--split": [*TEXT, "val", "test", "train"],
    "--length": INT,
    "--offset": INT,
    "--layer": INT,
    "--units": [*TEXT, "0,3", "-1", "99"],
    "--show": INT,
}
UNROLL_FLAGS = {
    "--cell": CELL,
    "--steps": INT,
    "--input-size": SIZE,
    "--hidden-size": SIZE,
    "--output-size": SIZE,
    "--values": [*TEXT, "1,0;0,1", "nan,inf", "1;2;3", ";;"],
    "--seed": INT,
    "--decimals": INT,
}


class Case:
    """A temporary folder for one case, with the damaged files and folders the case needs."""

    def __init__(self, draw, runs: dict[str, Path]):
        self.draw, self.runs = draw, runs
        self.root = Path(tempfile.mkdtemp(prefix="rnnkit-fuzz-"))
        self.guard: Path | None = None
        self.n = 0

    def name(self, suffix: str = "") -> Path:
        self.n += 1
        return self.root / f"f{self.n}{suffix}"

    def close(self) -> None:
        for path in [self.root, *self.root.rglob("*")]:
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)
        shutil.rmtree(self.root, ignore_errors=True)

    # files -------------------------------------------------------------------------------------
    def data_file(self, task: str) -> str:
        good = good_data(task)
        kind = self.draw(
            st.sampled_from(
                ["good"] * 14
                + ["empty", "binary", "latin-1", "wrong columns", "nan", "ragged", "huge field"]
                + ["header only", "text", "folder", "missing", "under a file", "bom", "crlf"]
            )
        )
        path = self.name(SUFFIX[task])
        lines = good.splitlines(keepends=True)
        if kind == "good":
            path.write_text(good)
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "binary":
            path.write_bytes(self.draw(st.binary(min_size=1, max_size=300)))
        elif kind == "latin-1":
            path.write_bytes(good.replace("a", "é", 5).encode("latin-1"))
        elif kind == "wrong columns":
            path.write_text("foo,bar,baz\n" + "".join(lines[1:]))
        elif kind == "nan":
            value = self.draw(st.sampled_from(["nan", "inf", "-inf", "NaN", "1e999", ""]))
            i = self.draw(st.integers(1, len(lines) - 1))
            cut = lines[i].rstrip("\n").rsplit(",", 1)
            lines[i] = (cut[0] + "," + value if len(cut) == 2 else value) + "\n"
            path.write_text("".join(lines))
        elif kind == "ragged":
            i = self.draw(st.integers(1, len(lines) - 1))
            lines[i] = self.draw(st.sampled_from(["x\n", "1,2,3,4,5\n", ",,\n", "\t\t\n", '"\n']))
            path.write_text("".join(lines))
        elif kind == "huge field":
            i = self.draw(st.integers(1, len(lines) - 1))
            lines[i] = "w" * (200 * 1024) + lines[i]
            path.write_text("".join(lines))
        elif kind == "header only":
            path.write_text(lines[0])
        elif kind == "text":
            path.write_text(self.draw(st.text(max_size=200)), errors="surrogatepass")
        elif kind == "folder":
            path.mkdir()
            (path / f"a{SUFFIX[task]}").write_text(good)
        elif kind == "missing":
            pass
        elif kind == "under a file":
            path.write_text(good)
            path = path / f"x{SUFFIX[task]}"
        elif kind == "bom":
            path.write_bytes(b"\xef\xbb\xbf" + good.encode())
        elif kind == "crlf":
            path.write_bytes(good.replace("\n", "\r\n").encode())
        return str(path)

    def out_path(self, fresh: str = "out") -> str:
        """Where a verb writes: mostly a new path, sometimes one it cannot write to."""
        kind = self.draw(
            st.sampled_from(
                ["new"] * 14
                + ["under a file", "read-only folder", "/sys", "empty", "existing folder", "file"]
            )
        )
        if kind == "new":
            return str(self.name() / fresh)
        if kind == "under a file":
            path = self.name()
            path.write_text("x")
            return str(path / fresh)
        if kind == "read-only folder":
            path = self.name()
            path.mkdir()
            path.chmod(0o555)
            return str(path / fresh)
        if kind == "/sys":  # unwritable even for root
            return f"/sys/rnnkit-fuzz/{fresh}"
        if kind == "empty":
            return ""
        if kind == "existing folder":
            path = self.name()
            path.mkdir()
            return str(path)
        path = self.name(".png")
        path.write_text("x")
        return str(path)

    def run_dir(self, tasks=TASKS) -> str:
        """A copy of a trained run, often damaged, or a path that is no run at all."""
        task = self.draw(st.sampled_from(tasks))
        kind = self.draw(
            st.sampled_from(
                ["good"] * 10
                + ["config value", "config value", "config text", "checkpoint", "checkpoint"]
                + ["read-only", "no run", "empty folder", "a file", "under a file", "metrics"]
            )
        )
        if kind == "no run":
            return str(self.name())
        if kind in ("a file", "under a file"):
            path = self.name()
            path.write_text("{}")
            return str(path) if kind == "a file" else str(path / "run")
        path = self.name()
        if kind == "empty folder":
            path.mkdir()
            return str(path)
        shutil.copytree(self.runs[task], path)
        self.guard = path
        if kind == "config value":
            self.damage_config_value(path / "config.json")
        elif kind == "config text":
            text = (path / "config.json").read_text()
            broken = ["", "[]", '"x"', "3", "null", "{", "{}", text[: len(text) // 2], text + "x"]
            broken += [json.dumps({"task": []}), json.dumps({"task": {}})]
            (path / "config.json").write_text(self.draw(st.sampled_from(broken)))
        elif kind == "checkpoint":
            self.damage_checkpoint(path)
        elif kind == "metrics":
            (path / "metrics.jsonl").write_text(
                self.draw(st.sampled_from(["", "x\n", "{}\n", '{"step": "x"}\n', "[1]\n"]))
            )
        elif kind == "read-only":
            path.chmod(0o555)
        return str(path)

    def damage_config_value(self, path: Path) -> None:
        config = json.loads(path.read_text())
        leaves = []

        def walk(node, where):
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(value, [*where, key])
            elif isinstance(node, list) and node and where[-1] != "symbols":
                for i, value in enumerate(node):
                    walk(value, [*where, i])
            leaves.append(where)

        walk(config, [])
        where = self.draw(st.sampled_from(leaves[:-1]))
        value = self.draw(
            st.sampled_from(
                ["x", 4.5, -1, 0, None, [], {}, 10**30, 1e9, True, "nan", float("nan"), "4"]
            )
        )
        node = config
        for key in where[:-1]:
            node = node[key]
        if self.draw(st.booleans()):
            node[where[-1]] = value
        elif isinstance(node, dict):  # an extra key beside it
            node["unexpected_" + str(where[-1])] = value
        else:
            node[where[-1]] = value
        path.write_text(json.dumps(config, allow_nan=True))

    def damage_checkpoint(self, run: Path) -> None:
        name = self.draw(st.sampled_from(["checkpoint.safetensors", "best.safetensors"]))
        target = run / name
        data = target.read_bytes()
        how = self.draw(st.sampled_from(["truncate", "flip", "delete", "zero", "both gone"]))
        if how == "truncate":
            target.write_bytes(data[: self.draw(st.integers(0, len(data) - 1))])
        elif how == "flip":
            i = self.draw(st.integers(0, len(data) - 1))
            target.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
        elif how == "delete":
            target.unlink()
        elif how == "zero":
            target.write_bytes(bytes(len(data)))
        else:
            for p in run.glob("*.safetensors"):
                p.unlink()

    def flags(self, table: dict, most: int = 3) -> list[str]:
        argv = []
        for flag in self.draw(st.lists(st.sampled_from(sorted(table)), max_size=most, unique=True)):
            values = table[flag]
            argv += [flag] if values is None else [flag, self.draw(st.sampled_from(values))]
        return argv

    # argv --------------------------------------------------------------------------------------
    def argv(self) -> list[str]:
        verb = self.draw(
            st.sampled_from(
                [f"train {t}" for t in TASKS] * 3
                + ["evaluate", "predict", "sample"] * 3
                + ["backtest", "plot", "datasets", "garbage"]
                + ["diagnose gradients", "diagnose gates", "diagnose hidden", "diagnose unroll"]
            )
        )
        if verb.startswith("train "):
            return self.train(verb.split()[1])
        if verb in ("evaluate", "predict", "sample"):
            run = self.run_dir()
            argv = [verb, run, *self.flags(RUN_FLAGS[verb])]
            if verb == "evaluate" and self.draw(st.booleans()):
                argv += ["--plot", self.draw(st.sampled_from(["none", self.out_path("p.png")]))]
            if verb == "evaluate" and self.draw(st.integers(0, 3)) == 0:
                argv += ["--heatmap", self.out_path("h.png")]
            if verb in ("evaluate", "predict") and self.draw(st.integers(0, 3)) == 0:
                task = self.draw(st.sampled_from(TASKS))
                argv += ["--data", self.data_file(task)]
            if verb == "predict":
                argv += self.predict_inputs()
            return argv
        if verb == "backtest":
            argv = ["backtest", self.run_dir(("forecast", "forecast", "lm"))]
            argv += self.flags(RUN_FLAGS["backtest"])
            if self.draw(st.booleans()):
                argv += ["--plot", self.out_path("b.png")]
            if self.draw(st.integers(0, 3)) == 0:
                argv += ["--data", self.data_file("forecast")]
            return argv
        if verb == "plot":
            argv = ["plot", self.run_dir()]
            return argv + (["--png", self.out_path("l.png")] if self.draw(st.booleans()) else [])
        if verb == "datasets":
            return ["datasets", *self.draw(st.sampled_from([[], ["x"], ["--json"]]))]
        if verb == "garbage":
            return self.draw(st.lists(st.sampled_from([*TEXT, "train", "-h", "--x"]), max_size=3))
        what = verb.split()[1]
        if what in ("gradients", "gates"):
            argv = ["diagnose", what, "--steps", "5", "--batch-size", "2", "--hidden-size", "4"]
            if self.draw(st.integers(0, 2)) == 0:
                argv += ["--run", self.run_dir(("lm", "lm", "classify"))]
            argv += self.flags(MODEL_FLAGS)
            if what == "gradients" and self.draw(st.booleans()):
                argv.append("--json")
            if self.draw(st.booleans()):
                argv += ["--png", self.out_path("g.png")]
            return argv
        if what == "hidden":
            argv = ["diagnose", "hidden", self.run_dir(("lm", "lm", "lm", "classify"))]
            argv += ["--length", "50", *self.flags(HIDDEN_FLAGS)]
            return argv + (["--stem", self.out_path("hid")] if self.draw(st.booleans()) else [])
        return ["diagnose", "unroll", "--hidden-size", "3", *self.flags(UNROLL_FLAGS)]

    def predict_inputs(self) -> list[str]:
        kind = self.draw(st.sampled_from(["none", "text", "file", "input"]))
        if kind == "text":
            return self.draw(st.lists(st.sampled_from([*TEXT, "good film", "abc"]), max_size=3))
        if kind == "file":
            return [self.data_file(self.draw(st.sampled_from(TASKS)))]
        if kind == "input":
            return ["--input", self.data_file("seq2seq")]
        return []

    def train(self, task: str) -> list[str]:
        argv = train_argv(task, self.data_file(task), self.out_path())
        argv += self.flags({**TRAIN_FLAGS, **TASK_FLAGS[task]})
        how = self.draw(st.sampled_from(["plain"] * 6 + ["resume", "existing", "config"]))
        if how in ("resume", "existing"):
            run = self.run_dir((task,))
            argv += ["--out", run] + (["--resume"] if how == "resume" else [])
            argv += ["--max-steps", self.draw(st.sampled_from(["2", "3", "1"]))]
        elif how == "config":
            source = Path(self.run_dir((task,))) / "config.json"
            argv += ["--config", str(source)]
        return argv


def fuzz(draw, runs, counts: Counter, seen: dict) -> None:
    case = Case(draw, runs)
    cwd = os.getcwd()
    try:
        argv = case.argv()
        os.chdir(case.root)  # an empty path means "here" to some verbs: keep it in the case
        outcome, detail = run_case(argv, case.guard)
    finally:
        os.chdir(cwd)
        case.close()
    if outcome == "traceback" and any(p.search(detail) for p in OWNED_ELSEWHERE):
        outcome = "known"
        seen.setdefault(f"known: {detail}", argv)
    counts[outcome] += 1
    counts["cases"] += 1
    if LOG:
        with open(LOG, "a") as f:
            f.write(json.dumps({"outcome": outcome, "detail": detail, "argv": argv}) + "\n")
    if outcome in BAD:
        seen.setdefault(re.sub(r"/tmp/rnnkit-fuzz-[^/' ]+", "TMP", f"{outcome}: {detail}"), argv)
        if not SURVEY:
            pytest.fail(f"{outcome}: {detail}\nargv: {argv}")


def report(title: str, counts: Counter, seen: dict) -> None:
    print(f"\n{title}: " + ", ".join(f"{k} {counts[k]}" for k in ["cases", "result",
          "clean error", "known", *BAD]))  # fmt: skip
    for detail, argv in seen.items():
        print(f"  {detail}\n    argv: {argv}")


FUZZ_SETTINGS = dict(
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def _fuzz_run(runs, title: str, **options) -> Counter:
    """Run the fuzzer under hypothesis ``settings(**options)``; report and return the counts."""
    counts, seen = Counter(), {}

    @settings(**options, **FUZZ_SETTINGS)
    @given(st.data())
    def check(data):
        fuzz(data.draw, runs, counts, seen)

    try:
        check()
    finally:
        report(title, counts, seen)
    return counts


def test_fuzz_quick(runs):
    """The same QUICK_CASES cases every time (derandomized): none ends badly."""
    counts = _fuzz_run(runs, "fuzz quick", max_examples=QUICK_CASES, derandomize=True)
    assert counts["cases"] >= min(QUICK_CASES, 60)
    assert counts["result"] and counts["clean error"]  # the fuzzer reaches both ends
    assert not any(counts[k] for k in BAD)


@pytest.mark.slow
def test_fuzz_slow(runs):
    """SLOW_CASES random cases: none ends badly."""
    counts = _fuzz_run(runs, "fuzz slow", max_examples=SLOW_CASES)
    assert counts["cases"] >= min(SLOW_CASES, 1000)
    assert not any(counts[k] for k in BAD)


# -- the failures the fuzzer and the issue found, one by one -------------------------------------
def expect(argv: list[str], outcome: str, needle: str = "", guard: Path | None = None) -> None:
    got, detail = run_case(argv, guard)
    assert got == outcome, (got, detail)
    assert needle in detail, detail


@pytest.mark.parametrize("value", ["-1", "0", "0.5", "", "meta", "cuda:x", " cpu"])
def test_bad_device_is_one_line(value, runs, tmp_path):
    expect(["evaluate", str(runs["lm"]), "--device", value], "clean error", "--device")
    data = str(runs["lm"].parent / "lm.txt")
    argv = [*train_argv("lm", data, str(tmp_path / "r")), "--device", value]
    expect(argv, "clean error", "--device")


@pytest.mark.parametrize(
    "flag, value, needle",
    [
        ("--hidden-size", "99999999999999999999", "--hidden-size must be at most 1048576"),
        ("--hidden-size", "1000000000", "--hidden-size must be at most 1048576"),
        ("--num-layers", "99999999999999999999", "--num-layers must be at most 1024"),
        ("--hidden-size", "100000", "recurrent weights"),
        ("--lr", "nan", "--lr must be a finite number"),
        ("--grad-clip", "nan", "--grad-clip must be a finite number"),
        ("--weight-decay", "-1", "--weight-decay must be >= 0"),
        ("--seed", "99999999999999999999", "--seed must lie in"),
    ],
)
def test_bad_train_settings_are_refused_before_building(flag, value, needle, runs, tmp_path):
    data = str(runs["lm"].parent / "lm.txt")
    out = tmp_path / "r"
    expect([*train_argv("lm", data, str(out)), flag, value], "clean error", needle)
    assert not out.exists()  # refused before the run folder was made


@pytest.mark.parametrize("flag, value", [("--temperature", "nan"), ("--temperature", "inf")])
def test_sample_refuses_non_finite_settings(flag, value, runs):
    expect(["sample", str(runs["lm"]), "--length", "5", flag, value], "clean error", flag)


def test_paths_under_a_file_or_unwritable_are_one_line(runs, tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    data = str(runs["lm"].parent / "lm.txt")
    expect(train_argv("lm", data, str(file / "run")), "clean error", "is a file, not a folder")
    expect(train_argv("lm", data, "/sys/rnnkit-fuzz/run"), "clean error", "/sys/rnnkit-fuzz")
    expect(["plot", str(runs["lm"]), "--png", str(file / "l.png")], "clean error", "l.png")
    expect(["evaluate", str(file / "run")], "clean error", "run config not found")
    argv = ["diagnose", "gates", "--steps", "5", "--hidden-size", "4"]
    expect([*argv, "--png", str(file / "g.png")], "clean error")


def test_long_csv_field_is_read(runs, tmp_path):
    rows = good_data("classify").splitlines(keepends=True)
    rows[1] = "w" * (200 * 1024) + " " + rows[1]
    (tmp_path / "long.csv").write_text("".join(rows))
    expect(train_argv("classify", str(tmp_path / "long.csv"), str(tmp_path / "r")), "result")


def test_damaged_config_types_are_one_line(runs, tmp_path):
    for task, where, value in [
        ("lm", ("task", "model", "hidden_size"), "x"),
        ("lm", ("task", "model", "hidden_size"), 4.5),
        ("classify", ("task", "data", "max_length"), {}),
        ("forecast", ("task", "model", "members"), 10**30),
    ]:
        run = tmp_path / f"{task}-{where[-1]}-{type(value).__name__}"
        shutil.copytree(runs[task], run)
        config = json.loads((run / "config.json").read_text())
        config[where[0]][where[1]][where[2]] = value
        (run / "config.json").write_text(json.dumps(config))
        expect(["evaluate", str(run)], "clean error", where[-1], guard=run)  # names the field
    run = tmp_path / "forecast-extra-train-key"  # backtest retrains with the stored settings
    shutil.copytree(runs["forecast"], run)
    config = json.loads((run / "config.json").read_text())
    config["train"]["unexpected_device"] = 1
    (run / "config.json").write_text(json.dumps(config))
    expect(["backtest", str(run)], "clean error", "unexpected_device", guard=run)
    run = tmp_path / "list"
    shutil.copytree(runs["lm"], run)
    (run / "config.json").write_text("[]")
    expect(["evaluate", str(run)], "clean error", "damaged", guard=run)


def test_relative_data_evaluates_from_another_folder(runs, tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "corpus.txt").write_text(good_data("lm"))
    monkeypatch.chdir(tmp_path / "a")
    expect(train_argv("lm", "corpus.txt", str(tmp_path / "run")), "result")
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["task"]["data"]["data"]
    assert stored == str(tmp_path / "a" / "corpus.txt")
    monkeypatch.chdir(tmp_path / "b")
    expect(["evaluate", str(tmp_path / "run"), "--json"], "result")


def test_a_huge_seq2seq_source_is_refused_not_decoded_for_hours(runs, tmp_path):
    source = tmp_path / "huge.tsv"
    source.write_text("w" * (200 * 1024) + "\tx\n")  # found by the slow run: it hung
    expect(["predict", str(runs["seq2seq"]), "--input", str(source)], "clean error", "at most")
