"""``rnnkit bench memory``: which sequence lengths each cell learns to bridge.

rnnkit bench memory --task adding --cells rnn,lstm,gru --lengths 10,20,50,100,200,400
rnnkit bench memory --task copy --quick
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "benchmarks of what cells can learn: memory (adding problem, copy task)"

# The default budgets stay under ~20 minutes on one thread: the adding run about 10 (estimated
# from per-step costs), the copy run 14.5 (measured, shared machine); see docs/diagnose.md. The copy
# task learns far more slowly than the adding problem, so it gets more steps, a wider layer and
# shorter lengths.
DEFAULT_LENGTHS = "10,20,50,100,200,400"
TASK_DEFAULTS = {
    "adding": dict(lengths=DEFAULT_LENGTHS, steps=2500, hidden_size=64),
    "copy": dict(lengths="10,20,50", steps=6000, hidden_size=128),
}
QUICK = dict(lengths="5,10", steps=60, hidden_size=16, batch_size=16, eval_every=30, eval_size=64)


def add_flags(parser: argparse.ArgumentParser) -> None:
    from rnnkit.tasks.memory import MemoryConfig

    d = MemoryConfig()
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
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated [%(default)s]")
    p.add_argument(
        "--lengths",
        default=None,
        help=f"comma-separated [adding: {DEFAULT_LENGTHS}; copy: 10,20,50]",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="step budget per run [adding: 2500; copy: 6000]",
    )
    p.add_argument("--hidden-size", type=int, default=None, help="[adding: 64; copy: 128]")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument(
        "--lr",
        default=",".join(f"{c}={v:g}" for c, v in d.lr.items()),  # type: ignore[union-attr]
        help="Adam's learning rate: one number, or cell=lr pairs [%(default)s]",
    )
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--eval-size", type=int, default=d.eval_size, help="test sequences")
    p.add_argument("--max-seconds", type=float, default=None, help="wall-clock cap per run")
    p.add_argument("--seed", type=int, default=d.seed)
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


def _parse_lr(text: str, parser) -> float | dict[str, float]:
    try:
        if "=" not in text:
            return float(text)
        pairs = [p.split("=") for p in text.split(",") if p.strip()]
        return {cell.strip(): float(v) for cell, v in pairs}
    except ValueError:
        parser.error(f"--lr takes a number or cell=lr pairs (lstm=1e-2,rnn=5e-3), got {text!r}")


def run(args, parser) -> int:
    return memory(args, parser)


def trained_horizon(result, seed: int = 0):
    """The gradient flow of a trained memory model (``result.model``) on its own task and
    length, loss at the last step, without Jacobians."""
    import torch
    import torch.nn.functional as F

    from rnnkit.diagnose.gradients import gradient_flow
    from rnnkit.tasks.memory import make_batch

    model = result.model
    x, y = make_batch(result.task, 16, result.length, torch.Generator().manual_seed(seed + 77))
    feats = model.features(x)
    if result.task == "adding":

        def loss_fn(out):
            return (model.head(out).squeeze(-1) - y[:, None]) ** 2

    else:

        def loss_fn(out):
            return F.cross_entropy(model.head(out).transpose(1, 2), y, reduction="none")

    return gradient_flow(model.rnn, feats, loss_fn=loss_fn, jacobians=False, label=result.cell)


def memory(args, parser) -> int:
    import torch

    from rnnkit.cells.registry import cell_names
    from rnnkit.cli.diagnose import _csv
    from rnnkit.diagnose.gradients import GradientFlow
    from rnnkit.tasks.memory import MemoryConfig, bench_memory, format_table, plot_memory

    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    for k, v in TASK_DEFAULTS[args.task].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    try:
        lengths = [int(t) for t in _csv(args.lengths)]
    except ValueError:
        parser.error(f"--lengths takes comma-separated integers, got {args.lengths!r}")
    cells = _csv(args.cells)
    for c in cells:
        if c not in cell_names():
            parser.error(f"--cells: {c!r} is not one of {', '.join(cell_names())}")
    cfg = MemoryConfig(
        hidden_size=args.hidden_size,
        batch_size=args.batch_size,
        lr=_parse_lr(args.lr, parser),
        max_steps=args.steps,
        eval_every=args.eval_every,
        eval_size=args.eval_size,
        seed=args.seed,
        max_seconds=args.max_seconds,
    )
    flows: dict[tuple[str, int], GradientFlow] = {}

    def progress(r) -> None:
        if args.horizons:
            flows[(r.cell, r.length)] = trained_horizon(r, args.seed)
            r.model = None
        value = f"MSE {r.metric:.4f}" if r.task == "adding" else f"recall {100 * r.metric:.1f}%"
        print(
            f"{r.task} {r.cell:<8} T={r.length:<5} {'solved' if r.solved else 'not solved':<11}"
            f"{value}  {r.steps} steps  {r.seconds:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    print(
        f"budget: {cfg.max_steps} steps per run (stops when solved), batch {cfg.batch_size}, "
        f"H={cfg.hidden_size}, Adam lr {args.lr}, clip {cfg.clip:g}, seed {cfg.seed}, "
        f"{torch.get_num_threads()} threads",
        file=sys.stderr,
    )
    results = bench_memory(
        args.task,
        cells,
        lengths,
        cfg,
        keep_models=args.horizons,
        stop_after_fail=not args.all_lengths,
        progress=progress,
    )
    png = args.png or f"memory-{args.task}.png"
    plot_memory(results, png)
    if args.json:
        rows = []
        for r in results:
            row = r.as_dict()
            if args.horizons:
                row["horizon"] = flows[(r.cell, r.length)].verdicts[0].__dict__
            rows.append(row)
        print(json.dumps({"task": args.task, "config": cfg.__dict__, "png": png, "runs": rows}))
        return 0
    print(format_table(results, lengths))
    total = sum(r.seconds for r in results)
    print(f"total training time {total:.0f} s; plot: {png}")
    if args.horizons:
        print("\nmemory horizons of the trained models (gradient flow, loss at the last step):")
        for r in results:
            flow = flows[(r.cell, r.length)]
            v = flow.verdicts[0]
            text = v.tag(flow.steps)  # the copy task runs over length + 20 steps
            if v.estimate is not None and v.verdict != "vanishing":
                text += f" (extrapolated ~{v.estimate:.0f})"
            print(f"  {r.cell:<8} T={r.length:<5} {text}")
    return 0
