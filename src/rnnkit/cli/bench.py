"""``rnnkit bench memory``: which sequence lengths each cell learns to bridge.

rnnkit bench memory --task adding --cells rnn,lstm,gru --lengths 10,20,50,100,200,400
rnnkit bench memory --task copy --quick
rnnkit bench memory --cells lstm,gru --init chrono --lengths 100,200,400
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "benchmarks of what cells can learn: memory (adding problem, copy task)"


def add_flags(parser: argparse.ArgumentParser) -> None:
    from rnnkit.cells.registry import cell_names
    from rnnkit.diagnose.memory import MemoryConfig
    from rnnkit.diagnose.memory_bench import TASK_DEFAULTS, format_lr

    d = MemoryConfig()
    adding, copy = TASK_DEFAULTS["adding"], TASK_DEFAULTS["copy"]
    sub = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    p = sub.add_parser(
        "memory",
        help="train each cell on the adding problem or the copy task at growing lengths",
        description="Train each cell on the adding problem (solved: test MSE < 0.01; always "
        "answering 1 scores 0.167) or the copy-memory task (solved: >= 99%% of the recalled "
        "symbols right) at each length, from fixed seeds with a per-run step budget; print the "
        "lengths each cell solves and draw a PNG.",
    )
    p.add_argument("--task", choices=["adding", "copy"], default="adding")
    p.add_argument(
        "--cells",
        default="rnn,lstm,gru",
        help=f"comma-separated, of {', '.join(cell_names())} [%(default)s]",
    )
    p.add_argument(
        "--lengths",
        default=None,
        help="comma-separated [adding: {}; copy: {}]".format(
            ",".join(map(str, adding["lengths"])), ",".join(map(str, copy["lengths"]))
        ),
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"step budget per run [adding: {adding['max_steps']}; copy: {copy['max_steps']}]",
    )
    p.add_argument(
        "--hidden-size",
        type=int,
        default=None,
        help=f"[adding: {adding['hidden_size']}; copy: {copy['hidden_size']}]",
    )
    # None: the library's default (shown in brackets), so that it has one source
    p.add_argument("--batch-size", type=int, default=None, help=f"[{d.batch_size}]")
    p.add_argument(
        "--lr",
        default=None,
        help=f"Adam's learning rate: one number, or cell=lr pairs [{format_lr(d.lr)}]",
    )
    p.add_argument("--eval-every", type=int, default=None, help=f"[{d.eval_every}]")
    p.add_argument("--eval-size", type=int, default=None, help=f"test sequences [{d.eval_size}]")
    p.add_argument("--max-seconds", type=float, default=None, help="wall-clock cap per run")
    p.add_argument("--seed", type=int, default=None, help=f"[{d.seed}]")
    p.add_argument(
        "--init",
        default=None,
        help="the layers' initialisation: default, orthogonal, irnn (rnn) or chrono (lstm, gru, "
        f"lnlstm, lngru; Tallec & Ollivier 2018) [{d.init}]",
    )
    p.add_argument(
        "--max-dependency",
        type=int,
        default=None,
        help="T_max of --init chrono [each run's length T]",
    )
    p.add_argument(
        "--horizons",
        action="store_true",
        help="also measure each trained model's memory horizon (gradient flow, loss at T)",
    )
    p.add_argument(
        "--all-lengths",
        action="store_true",
        help="run every length even after a cell has failed a shorter one (default: skip)",
    )
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (seconds; for tests)")
    p.add_argument("--png", default=None, help="where to draw [memory-TASK.png]")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")


def run(args, parser) -> int:
    return memory(args, parser)


def memory(args, parser) -> int:
    import torch

    from rnnkit.comma_lists import comma_ints, split_commas
    from rnnkit.diagnose import memory_bench as bench

    lengths, cfg = bench.benchmark_setup(
        args.task,
        quick=args.quick,
        lengths=None if args.lengths is None else comma_ints(args.lengths, "--lengths"),
        hidden_size=args.hidden_size,
        batch_size=args.batch_size,
        lr=None if args.lr is None else bench.parse_lr(args.lr),
        max_steps=args.steps,
        eval_every=args.eval_every,
        eval_size=args.eval_size,
        seed=args.seed,
        max_seconds=args.max_seconds,
        init=args.init,
        max_dependency=args.max_dependency,
    )

    def progress(r) -> None:
        value = f"MSE {r.metric:.4f}" if r.task == "adding" else f"recall {100 * r.metric:.1f}%"
        print(
            f"{r.task} {r.cell:<8} T={r.length:<5} {'solved' if r.solved else 'not solved':<11}"
            f"{value}  {r.steps} steps  {r.seconds:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    print(
        f"budget: {cfg.max_steps} steps per run (stops when solved), batch {cfg.batch_size}, "
        f"H={cfg.hidden_size}, Adam lr {bench.format_lr(cfg.lr)}, clip {cfg.clip:g}, "
        f"seed {cfg.seed}, init {cfg.init}, {torch.get_num_threads()} threads",
        file=sys.stderr,
    )
    results = bench.bench_memory(
        args.task,
        split_commas(args.cells),
        lengths,
        cfg,
        horizons=args.horizons,
        stop_after_fail=not args.all_lengths,
        progress=progress,
    )
    png = args.png or f"memory-{args.task}.png"
    bench.plot_memory(results, png)
    if args.json:
        rows = [r.as_dict() for r in results]
        print(json.dumps({"task": args.task, "config": cfg.__dict__, "png": png, "runs": rows}))
        return 0
    print(bench.format_table(results, lengths))
    total = sum(r.seconds for r in results)
    print(f"total training time {total:.0f} s; plot: {png}")
    if args.horizons:
        print("\nmemory horizons of the trained models (gradient flow, loss at the last step):")
        for r in results:
            v = r.flow.verdicts[0]
            text = v.tag(r.flow.steps)  # the copy task runs over length + 20 steps
            if v.estimate is not None and v.verdict != "vanishing":
                text += f" (extrapolated ~{v.estimate:.0f})"
            print(f"  {r.cell:<8} T={r.length:<5} {text}")
    return 0
