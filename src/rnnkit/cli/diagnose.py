"""``rnnkit diagnose``: look inside recurrent networks.

rnnkit diagnose gradients --cell rnn,lstm,gru --steps 100          # fresh models
rnnkit diagnose gradients --cell rnn --init default,orthogonal --steps 200
rnnkit diagnose gradients --run runs/shk --steps 200 --json  # a trained LM
rnnkit diagnose gates --cell lstm,gru --steps 100 [--run RUN_DIR]
rnnkit diagnose hidden runs/shk --units auto --stem hidden
rnnkit diagnose unroll --cell rnn --steps 3 --hidden-size 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "look inside a model: gradient flow through time, gates, hidden units, the unrolled chain"


def _fresh_model_flags(p: argparse.ArgumentParser, cells: str) -> None:
    from rnnkit.diagnose.models import CELLS, INITS

    g = p.add_argument_group("fresh models (without --run)")
    g.add_argument(
        "--cell",
        default=cells,
        help=f"comma-separated cells: {', '.join(CELLS)} (lnlstm: the "
        "custom LayerNormLSTMCell) [%(default)s]",
    )
    g.add_argument(
        "--init",
        default="default",
        help=f"comma-separated initialisations, each tried on every cell it fits: "
        f"{', '.join(INITS)} [%(default)s]",
    )
    g.add_argument("--gain", type=float, default=1.0, help="scale of orthogonal/irnn [1]")
    g.add_argument(
        "--max-dependency",
        type=int,
        default=None,
        help="T_max of --init chrono, the longest dependency expected [--steps]",
    )
    g.add_argument(
        "--forget-bias",
        type=float,
        default=None,
        help="LSTM forget-gate bias (GRU: update gate); also runs each model without it",
    )
    g.add_argument("--hidden-size", type=int, default=64)
    g.add_argument("--input-size", type=int, default=8)
    g.add_argument("--num-layers", type=int, default=1)


def add_flags(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True, metavar="WHAT")

    p = sub.add_parser(
        "gradients",
        help="||dL/dh_t|| through time, Jacobians dh_T/dh_t, the memory horizon",
        description="Measure ||dL/dh_t|| at every step and layer with the loss at the last "
        "step, and the singular values of dh_T/dh_t; print a table and a verdict per model "
        "(its memory horizon: the distance at which the gradient falls below 1e-3 of its value "
        "at T, or 'exploding'), and draw a PNG.",
    )
    p.add_argument("--steps", type=int, default=100, help="sequence length T [%(default)s]")
    p.add_argument("--batch-size", type=int, default=16, help="sequences averaged over")
    p.add_argument("--run", default=None, metavar="RUN_DIR", help="a trained LM run")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best", help="which weights")
    p.add_argument("--loss", choices=["last", "every"], default="last", help="where the loss is")
    p.add_argument("--no-jacobians", action="store_true", help="skip dh_T/dh_t (faster)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", default="gradient-flow.png", help="where to draw [%(default)s]")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    _fresh_model_flags(p, "rnn,lstm,gru")

    p = sub.add_parser(
        "gates",
        help="LSTM/GRU gate statistics over a sequence",
        description="Mean gate values per step and layer, and the share of saturated units "
        "(gate < 0.05 or > 0.95), for LSTM (input, forget, output) and GRU (reset, update).",
    )
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--run", default=None, metavar="RUN_DIR", help="a trained LM run")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best", help="which weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", default="gates.png", help="where to draw [%(default)s]")
    p.add_argument("--json", action="store_true")
    _fresh_model_flags(p, "lstm,gru")

    p = sub.add_parser(
        "hidden",
        help="heat-map of hidden units over text (PNG, HTML); units that track features",
        description="Run a trained character LM over a passage, colour each character by "
        "chosen hidden units' values (PNG and a self-contained HTML page), and search every "
        "unit for correlation with simple features of the text (inside quotes, position in "
        "the line, indentation, ...).",
    )
    p.add_argument("run_dir", help="a trained character LM run")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best", help="which weights")
    p.add_argument("--text", default=None, help="a file to read the passage from")
    p.add_argument(
        "--split",
        default="val",
        choices=["train", "val", "test"],
        help="else a passage of this split [%(default)s]",
    )
    p.add_argument("--length", type=int, default=2000, help="characters analysed")
    p.add_argument("--offset", type=int, default=0, help="where in the split the passage starts")
    p.add_argument("--layer", type=int, default=-1, help="which layer [last]")
    p.add_argument(
        "--units", default="auto", help="comma-separated unit indices, or auto (best per feature)"
    )
    p.add_argument("--show", type=int, default=600, help="characters drawn in the pictures")
    p.add_argument("--stem", default="hidden", help="path stem: writes STEM.png, STEM.html")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "unroll",
        help="print the unrolled computation of a small model, step by step",
        description="Print x_t, h_t (and c_t) and y_t with shapes and values at every step, "
        "as a textbook draws the unrolled chain.",
    )
    from rnnkit.diagnose.unroll_print import unroll_cells

    p.add_argument("--cell", default="rnn", help=f"{', '.join(unroll_cells())} [%(default)s]")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--input-size", type=int, default=2)
    p.add_argument("--hidden-size", type=int, default=3)
    p.add_argument("--output-size", type=int, default=2)
    p.add_argument("--values", default=None, help="the input, ';' between steps: '1,0;0,1;...'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decimals", type=int, default=3)


def run(args, parser) -> int:
    return {"gradients": gradients, "gates": gates, "hidden": hidden, "unroll": unroll}[args.what](
        args, parser
    )


def _fresh_models(args) -> list[tuple[str, object]]:
    from rnnkit.comma_lists import split_commas
    from rnnkit.diagnose.models import fresh_models

    return fresh_models(
        split_commas(args.cell),
        split_commas(args.init),
        args.input_size,
        args.hidden_size,
        num_layers=args.num_layers,
        gain=args.gain,
        forget_bias=args.forget_bias,
        max_dependency=args.max_dependency or getattr(args, "steps", None),
        seed=args.seed,
    )


def _subject(run_dir: str, which: str, split: str = "val"):
    """A trained LM run as a diagnosis subject: the task loads it, diagnose only reads it."""
    from rnnkit.diagnose.lm import LMSubject
    from rnnkit.tasks.lm.run import load_run_text

    return LMSubject(*load_run_text(run_dir, which, split))


def gradients(args, parser) -> int:
    from rnnkit.diagnose.gradients import format_table, gradient_flow, plot_flows
    from rnnkit.diagnose.lm import lm_gradient_flow
    from rnnkit.diagnose.models import random_input

    jac = not args.no_jacobians
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    if args.run:
        flow = lm_gradient_flow(
            _subject(args.run, args.checkpoint),
            args.steps,
            batch_size=args.batch_size,
            loss_at=args.loss,
            jacobians=jac,
            seed=args.seed,
            label=Path(args.run).name,
        )
        flows = [flow]
        title = f"gradient flow of {args.run} (next-character loss)"
    else:
        x = random_input(args.batch_size, args.steps, args.input_size, args.seed)
        flows = [
            gradient_flow(layer, x, loss_at=args.loss, jacobians=jac, label=label, seed=args.seed)
            for label, layer in _fresh_models(args)
        ]
        title = f"fresh models, T = {args.steps}, H = {args.hidden_size}, x ~ N(0, 1)"
    plot_flows(flows, args.png, title)
    if args.json:
        print(json.dumps({"png": str(args.png), "models": [f.as_dict() for f in flows]}))
        return 0
    print(format_table(flows))
    if jac:
        print()
        print("spectral norm of dh_T/dh_t (mean over sequences) at distance T - t")
        for f in flows:
            for k, n in enumerate(f.jacobian_norms or []):
                marks = [d for d in (1, 10, 50, f.steps - 1) if d < f.steps]
                name = f.label + (f"/l{k}" if len(f.norms) > 1 else "")
                print(f"  {name:<24}" + "  ".join(f"{d:>3}: {n[::-1][d]:.2e}" for d in marks))
    print()
    for f in flows:
        for k in range(len(f.norms)):
            print(f.summary(k))
    print(f"\nplot: {args.png}", file=sys.stderr)
    return 0


def gates(args, parser) -> int:
    from rnnkit.diagnose.gates import format_table, gate_stats, gated_models, plot_gates
    from rnnkit.diagnose.lm import lm_gate_stats
    from rnnkit.diagnose.models import random_input

    if args.run:
        subject = _subject(args.run, args.checkpoint)
        label = Path(args.run).name
        stats = [
            lm_gate_stats(
                subject, args.steps, batch_size=args.batch_size, seed=args.seed, label=label
            )
        ]
        title = f"gates of {args.run} over its validation text"
    else:
        x = random_input(args.batch_size, args.steps, args.input_size, args.seed)
        stats = [gate_stats(m, x, label) for label, m in gated_models(_fresh_models(args))]
        title = f"fresh models, T = {args.steps}, x ~ N(0, 1)"
    plot_gates(stats, args.png, title)
    if args.json:
        print(json.dumps({"png": str(args.png), "models": [s.as_dict() for s in stats]}))
        return 0
    print(format_table(stats))
    print(f"\nplot: {args.png}", file=sys.stderr)
    return 0


def hidden(args, parser) -> int:
    from rnnkit.diagnose.hidden import (
        FEATURES,
        choose_units,
        find_units,
        heatmap_html,
        heatmap_png,
        hidden_trace,
        passage,
        text_features,
    )
    from rnnkit.diagnose.lm import lm_passage

    if args.text is not None:
        from rnnkit.tasks.lm.run import load_model

        model, vocab, _ = load_model(args.run_dir, args.checkpoint)
        text = passage(Path(args.text).read_text(encoding="utf-8")[args.offset :], args.length)
    else:
        subject = _subject(args.run_dir, args.checkpoint, args.split)
        model, vocab = subject.model, subject.vocab
        text = lm_passage(subject, args.offset, args.length)
    trace = hidden_trace(model, vocab, text, args.layer)
    found = find_units(trace, text_features(text))
    units, notes = choose_units(trace, found, args.units)
    shown = (
        trace
        if args.show >= len(text)
        else type(trace)(text[: args.show], trace.values[: args.show], trace.names)
    )
    title = f"{Path(args.run_dir).name}: hidden units over {len(shown.text)} characters"
    png = heatmap_png(shown, units, f"{args.stem}.png", title=title, notes=notes)
    page = heatmap_html(shown, units, f"{args.stem}.html", title=title, notes=notes)
    if args.json:
        print(
            json.dumps(
                {
                    "characters": len(text),
                    "png": str(png),
                    "html": str(page),
                    "units": [trace.names[u] for u in units],
                    "features": {
                        f: [{"unit": m.name, "index": m.unit, "r": m.r} for m in ms]
                        for f, ms in found.items()
                    },
                }
            )
        )
        return 0
    print(f"units that track the text, Pearson's r over {len(text)} characters:")
    for feature, matches in found.items():
        best = "  ".join(f"{m.name:>5} {m.r:+.3f}" for m in matches)
        print(f"  {feature:<15}{best}   ({FEATURES[feature]})")
    print(f"\nunits drawn: {', '.join(trace.names[u] for u in units)}")
    print(f"pictures: {png}, {page}")
    return 0


def unroll(args, parser) -> int:
    from rnnkit.diagnose.unroll_print import small_model, unroll_input, unrolled_text

    x = unroll_input(args.values, args.steps, args.input_size, args.seed)  # (T, I)
    layer, head = small_model(args.cell, x.size(1), args.hidden_size, args.output_size, args.seed)
    print(unrolled_text(layer, head, x, args.decimals))
    return 0
