"""How long a user waits for rnnkit's C++ kernels at first use, and at every use after.

Each try starts a fresh Python process with ``TORCH_EXTENSIONS_DIR`` set to a new empty folder
and times ``rnnkit.cells.kernels.load()`` in it: the whole first-use build (both units, side by
side, as ``torch.utils.cpp_extension`` runs them). Then, in that folder, a second fresh process
times the same call again: the cached build, only loaded. The figure the docs quote for the
first use (``rnnkit/cells/kernels/__init__.py``, the README) is the first column.

Run: ``PYTHONPATH=src python benchmarks/kernel_build.py [--tries 3]``. A try takes about 20 s
on the 2-core machine this project is developed on; the machine should otherwise be idle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

_PROBE = (
    "import time\n"
    "start = time.perf_counter()\n"
    "from rnnkit.cells import kernels\n"
    "imported = time.perf_counter()\n"
    "ops = kernels.load()\n"
    "done = time.perf_counter()\n"
    "assert ops is not None, 'the kernels did not build'\n"
    "print(f'{done - imported:.3f}')\n"
)


def _load_seconds(folder: str) -> float:
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=folder)
    env.pop("RNNKIT_KERNELS", None)
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        raise SystemExit(f"kernel build failed:\n{run.stderr.strip()[-2000:]}")
    return float(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=3, help="fresh builds (3)")
    args = parser.parse_args()
    print(f"{'try':<6} {'first use s':>12} {'cached s':>10}")
    first, cached = [], []
    for i in range(args.tries):
        with tempfile.TemporaryDirectory(prefix="rnnkit-build-") as folder:
            first.append(_load_seconds(folder))
            cached.append(_load_seconds(folder))
        print(f"{i + 1:<6} {first[-1]:>12.1f} {cached[-1]:>10.2f}")
    print(
        f"median {statistics.median(first):>12.1f} {statistics.median(cached):>10.2f}"
        f"   (first use: min {min(first):.1f}, max {max(first):.1f})"
    )
    print("seconds of kernels.load() in a fresh process; first use builds in an empty folder")


if __name__ == "__main__":
    main()
