"""Training throughput of the language model in 1 process and under torchrun with N processes.

Each configuration trains the same run (``rnnkit train lm``, the same global ``--batch-size``, so
every configuration does the same work per step) for ``--steps`` steps into a temporary folder,
and the throughput is read from its ``metrics.jsonl``: tokens trained between the first logged
window and the last, over the training time between them (the start-up, the first window and the
evaluations are left out). Rows:

    1 proc x 1 thread      the baseline every ratio divides by
    1 proc x N threads     the same machine's cores given to one process (the fair rival on a CPU)
    N procs x 1 thread     torchrun --nproc_per_node N, DistributedDataParallel over gloo or NCCL

On CUDA (``--device cuda``) each rank takes its own GPU (cuda:LOCAL_RANK) and the threads row is
left out. Wall-clock figures on shared CPU cores are noisy: rerun before believing a small
difference (--quick took 4 minutes on 2 shared, busy cores).

Run::

    python benchmarks/distributed.py                      # CPU, 1 vs 2 processes
    python benchmarks/distributed.py --quick              # 60 steps, one run per row
    python benchmarks/distributed.py --device cuda --nproc 2 --batch-size 256 --hidden-size 1024
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def corpus(folder: Path) -> Path:
    """About 1 MB of real text: modules of the running Python's standard library, repeated."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    names = ("argparse.py", "textwrap.py", "typing.py", "inspect.py", "dataclasses.py")
    text = "".join((stdlib / n).read_text() for n in names)
    path = folder / "corpus.txt"
    path.write_text(text * max(1, 1_000_000 // len(text)))
    return path


def throughput(run: Path) -> float:
    """Tokens per second of training time between the first and the last logged window."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r and "tokens" in r]
    first, last = rows[1], rows[-1]  # rows[0] is step 1: start-up and warm-up
    return (last["tokens"] - first["tokens"]) / (last["elapsed"] - first["elapsed"])


def train(args, data: Path, out: Path, nproc: int, threads: int) -> float:
    flags = ["train", "lm", "--data", str(data), "--out", str(out), "--device", args.device]
    flags += ["--batch-size", str(args.batch_size), "--bptt", str(args.bptt)]
    flags += ["--hidden-size", str(args.hidden_size), "--num-layers", "2"]
    flags += ["--max-steps", str(args.steps), "--log-every", "10", "--no-progress"]
    flags += ["--eval-every", str(args.steps), "--eval-max-tokens", "2000"]
    if nproc == 1:
        cmd = [sys.executable, "-m", "rnnkit", *flags]
    else:
        launcher = ["--standalone", f"--nproc_per_node={nproc}"]
        cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "rnnkit", *flags]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return throughput(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--nproc", type=int, default=2, help="processes under torchrun")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch")
    parser.add_argument("--bptt", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="runs per row; the best is kept")
    parser.add_argument("--quick", action="store_true", help="60 steps, one run per row")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 60, 1
    n = args.nproc
    rows = [("1 proc x 1 thread", 1, 1)]
    if args.device == "cpu":
        rows.append((f"1 proc x {n} threads", 1, n))
    rows.append((f"{n} procs x 1 thread", n, 1))
    print(
        f"lm, 2 layers, hidden {args.hidden_size}, global batch {args.batch_size} x bptt "
        f"{args.bptt}, {args.steps} steps, {args.device}, best of {args.repeats}"
    )
    print(f"{'configuration':<22} {'tokens/s':>10} {'ratio':>7}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        data = corpus(Path(tmp))
        for label, nproc, threads in rows:
            rates = [
                train(args, data, Path(tmp) / f"{nproc}-{threads}-{i}", nproc, threads)
                for i in range(args.repeats)
            ]
            rate = max(rates)  # the least disturbed run on shared cores
            base = base or rate
            print(f"{label:<22} {rate:>10,.0f} {rate / base:>7.2f}")


if __name__ == "__main__":
    main()
