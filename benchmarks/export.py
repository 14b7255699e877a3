"""Batch-1 streaming latency per step: the exported step model in onnxruntime against rnnkit's
own stepper and eager torch, on the same language-model run.

One token in, next-token logits and the state out, batch 1, as a chat-style client or an
on-device keyboard runs it. Four contenders, all on the same weights:

    onnxruntime   step.onnx from ``rnnkit export RUN --format onnx`` (CPU provider)
    torchscript   step.pt from ``rnnkit export RUN --format torchscript``
    stepper       rnnkit's ``stepper_for(model)`` (what ``rnnkit sample`` uses), inference mode
    eager         the model's own ``step`` (its forward on a one-token sequence), inference mode

Every contender is warmed up; then each round runs every contender for ``--steps`` tokens, in
an order that rotates every round, and records the median time per step of that round. The
table prints, per contender, the median over rounds and the spread (min-max) in microseconds,
and the ratio of its median to onnxruntime's. Shared CPU cores are noisy: read the ratios.

Run::

    python benchmarks/export.py                  # trains a small LM (H 256, 2 layers) first
    python benchmarks/export.py --run runs/shk   # an existing lm run
    python benchmarks/export.py --quick          # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rnnkit.cli.main import main as cli
from rnnkit.decoding import stepper_for
from rnnkit.export import export_run
from rnnkit.tasks.base import load_run


def small_run(folder: Path, hidden: int, layers: int) -> Path:
    """A language model trained for a few steps (latency does not depend on the weights)."""
    data = folder / "text.txt"
    data.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    run = folder / "run"
    code = cli(["train", "lm", "--data", str(data), "--out", str(run), "--hidden-size",
                str(hidden), "--num-layers", str(layers), "--max-steps", "2", "--no-progress",
                "--device", "cpu"])  # fmt: skip
    if code != 0:
        raise SystemExit("training the benchmark's run failed")
    return run


def contenders(run: Path, out: Path, threads: int) -> dict[str, Callable[[int], None]]:
    """``name -> step(token)``: each carries its own state across calls."""
    import onnxruntime as ort

    onnx_dir = Path(export_run(run, format="onnx", out=out / "onnx")["folder"])
    ts_dir = Path(export_run(run, format="torchscript", out=out / "ts")["folder"])
    model = load_run(run).model.eval()
    V = model.head.out_features

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(onnx_dir / "step.onnx"), options, providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()][1:]
    zero = [np.zeros([1 if isinstance(d, str) else d for d in i.shape], np.float32)
            for i in session.get_inputs()[1:]]  # fmt: skip
    ort_state = list(zero)

    def ort_step(token: int) -> None:
        nonlocal ort_state
        feeds = {"tokens": np.array([token], np.int64), **dict(zip(names, ort_state))}
        _, *ort_state = session.run(None, feeds)

    scripted = torch.jit.load(str(ts_dir / "step.pt"))
    ts_state = [torch.from_numpy(z) for z in zero]

    def ts_step(token: int) -> None:
        nonlocal ts_state
        with torch.inference_mode():
            _, *ts_state = scripted(torch.tensor([token]), *ts_state)

    stepper = stepper_for(model)
    with torch.inference_mode():
        st_state = stepper.start(torch.zeros(1, 0, dtype=torch.long))
        eager_state = model.rnn.initial_state(1)

    def stepper_step(token: int) -> None:
        nonlocal st_state
        with torch.inference_mode():
            _, st_state = stepper.step(torch.tensor([token]), st_state)

    def eager_step(token: int) -> None:
        nonlocal eager_state
        with torch.inference_mode():
            _, eager_state, _ = model.step(torch.tensor([token]), eager_state)

    assert V > 0
    return {
        "onnxruntime": ort_step,
        "torchscript": ts_step,
        "stepper": stepper_step,
        "eager": eager_step,
    }


def measure(steps: dict[str, Callable[[int], None]], rounds: int, n: int) -> dict[str, list]:
    """Per contender, the median time per step (s) of each round; order rotates each round."""
    names = list(steps)
    for step in steps.values():  # warm-up
        for t in range(20):
            step(t % 7)
    medians: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            step, times = steps[name], []
            for t in range(n):
                start = time.perf_counter()
                step(t % 7)
                times.append(time.perf_counter() - start)
            medians[name].append(statistics.median(times))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="an lm run (default: train one)")
    parser.add_argument("--hidden-size", type=int, default=256, help="of the trained run (256)")
    parser.add_argument("--num-layers", type=int, default=2, help="of the trained run (2)")
    parser.add_argument("--threads", type=int, default=1, help="threads for every contender (1)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (15; quick: 3)")
    parser.add_argument("--steps", type=int, default=200, help="tokens per round (200)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 rounds of 50 tokens")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 15)
    n = 50 if args.quick else args.steps
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        run = args.run or small_run(tmp_path, args.hidden_size, args.num_layers)
        config = load_run(run).task["model"]
        steps = contenders(run, tmp_path, args.threads)
        medians = measure(steps, rounds, n)
    print(
        f"batch-1 streaming, per step: cell {config['cell']}, hidden {config['hidden_size']}, "
        f"{config['num_layers']} layers; {rounds} rounds x {n} tokens, {args.threads} thread(s)"
    )
    base = statistics.median(medians["onnxruntime"])
    print(f"{'contender':<14}{'median us':>11}{'spread us':>18}{'/ onnxruntime':>15}")
    for name, values in medians.items():
        mid = statistics.median(values)
        spread = f"{min(values) * 1e6:.1f}-{max(values) * 1e6:.1f}"
        print(f"{name:<14}{mid * 1e6:>11.1f}{spread:>18}{mid / base:>15.2f}")


if __name__ == "__main__":
    main()
