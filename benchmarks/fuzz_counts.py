"""Count how the command line ends on fuzzed input: results, clean errors, known gaps, tracebacks,
hangs, lost files and messy errors, from ``tests/test_fuzz.py`` in survey mode (a case that goes
wrong is counted and listed, not failed).

    python benchmarks/fuzz_counts.py              # the quick set (60 cases, the same each time)
    python benchmarks/fuzz_counts.py --slow       # 1000 random cases (about 5-10 minutes)
    python benchmarks/fuzz_counts.py --slow --cases 3000 --log cases.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", action="store_true", help="random cases (default: quick set)")
    parser.add_argument("--cases", type=int, default=None, help="how many cases")
    parser.add_argument("--log", default=None, help="write every case here (JSON lines)")
    args = parser.parse_args()
    os.environ["RNNKIT_FUZZ_SURVEY"] = "1"
    if args.cases is not None:
        os.environ["RNNKIT_FUZZ_CASES"] = str(args.cases)
    if args.log:
        os.environ["RNNKIT_FUZZ_LOG"] = str(Path(args.log).resolve())
    test = "test_fuzz_slow" if args.slow else "test_fuzz_quick"
    target = f"{ROOT / 'tests' / 'test_fuzz.py'}::{test}"
    # the counts are printed by the test itself (-s); -m '' lifts the default 'not slow'
    return pytest.main([target, "-q", "-s", "-m", "", "-p", "no:cacheprovider"])


if __name__ == "__main__":
    sys.exit(main())
