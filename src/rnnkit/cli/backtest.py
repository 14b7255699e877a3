"""``rnnkit backtest RUN_DIR``: walk-forward evaluation with an expanding window.

The run's configuration is retrained from scratch once per fold, each time on the data up to
the fold's origin, and forecasts the ``horizon`` steps after it; the folds' origins step back
from the end of the series one horizon at a time. The baselines are refitted on the same data.
"""

from __future__ import annotations

import argparse
import json

HELP = "walk-forward backtest of a forecasting run's configuration (expanding window)"


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a forecasting run whose configuration is retrained")
    parser.add_argument("--folds", type=int, default=3, help="forecast origins (default: 3)")
    parser.add_argument("--data", default=None, help="backtest on this CSV (default: the run's)")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="training steps per fold (default: the run's)"
    )
    parser.add_argument("--plot", default=None, help="write a PNG of the folds' forecasts")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def run(args, parser) -> int:
    from rnnkit.cli.forecast import format_table
    from rnnkit.tasks.forecast.backtest import backtest_run

    m = backtest_run(
        args.run_dir, folds=args.folds, data=args.data, max_steps=args.max_steps, plot=args.plot
    )
    print(json.dumps(m) if args.json else format_table(m))
    return 0
