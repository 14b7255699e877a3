"""Classification and tagging on the command line: ``train classify``, ``train tag``,
``predict`` and ``evaluate`` for their runs. See ``rnnkit.cli.lm`` for the module pattern."""

from __future__ import annotations

import argparse
import json

from rnnkit.audio import AudioConfig
from rnnkit.cli.train_flags import add_train_groups, build_configs, report
from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig

HELP = "a sequence classifier (text, numbers, audio); `train tag` labels every step"


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    add_train_groups(
        parser,
        {
            "data": ClassifyDataConfig,
            "model": ClassifyModelConfig,
            "audio": AudioConfig,
        },
        titles={"audio": "audio (a folder of CLASS/*.wav)"},
    )


def train(args, parser) -> int:
    from rnnkit.tasks.classify.run import train_classify

    train_cfg, configs = build_configs(
        args,
        parser,
        (ClassifyModelConfig, ClassifyDataConfig, AudioConfig),
        hint=" (a labelled file, a folder of WAVs, or a data set)",
    )
    model_cfg, data_cfg, audio = configs or (None, None, None)
    result = train_classify(model_cfg, data_cfg, train_cfg, audio=audio, aligned=args.task == "tag")
    val = result.last_val
    last = f"; last validation accuracy {val['accuracy']:.4f}" if "accuracy" in val else ""
    return report(result, count="examples", best="accuracy", tail=last)


def add_predict_flags(group) -> None:
    group.add_argument(
        "inputs",
        nargs="*",
        help="classify runs: files (.csv/.jsonl text column, .npz, .ts, .wav or a folder of "
        "them), or for a text model the texts themselves; tag runs: texts (tokens apart by "
        "spaces, as in the training data), .txt (a text a line), .conll/.bio (first column) "
        "or .jsonl/.csv (the token column)",
    )
    group.add_argument(
        "--top", type=int, default=1, help="show the k most likely classes (--json: per token)"
    )
    group.add_argument("--json", action="store_true", help="one JSON object per input")


def predict(args, parser) -> int:
    from rnnkit.tasks.classify.run import predict as run_predict
    from rnnkit.tasks.classify.run import read_inputs, read_run_config

    if not args.inputs:
        raise ValueError("give something to classify or tag: files, or texts for a text model")
    if args.top < 1:
        raise ValueError(f"--top must be >= 1, got {args.top}")
    task = read_run_config(args.run_dir)["task"]
    items, names = [], []
    for source in args.inputs:
        got, got_names = read_inputs(source, task)
        items += got
        names += got_names
    results = run_predict(
        args.run_dir, items, which=args.checkpoint, device=args.device, top=args.top
    )
    for name, item, result in zip(names, items, results):
        if task["aligned"]:
            _print_tags(name, item if task["input_kind"] == "tokens" else None, result, args.json)
        elif args.json:
            print(json.dumps({"input": name, **result}))
        else:
            shown = "  ".join(f"{label} {p:.3f}" for label, p in result["top"])
            print(f"{shown}\t{name}")
    return 0


def _print_tags(name: str, tokens: list[str] | None, result: dict, as_json: bool) -> None:
    """One line per tagged sequence: ``token/TAG`` pairs (or, for numbers, the tags and the
    input's name), or one JSON object with the tokens beside their labels."""
    if as_json:
        print(json.dumps({"input": name, **({"tokens": tokens} if tokens else {}), **result}))
    elif tokens is not None:
        print(" ".join(f"{t}/{tag}" for t, tag in zip(tokens, result["labels"])))
    else:
        print(f"{' '.join(result['labels'])}\t{name}")


def evaluate(args, parser) -> int:
    from rnnkit.tasks.classify.run import evaluate_run

    # the shared --plot: default RUN_DIR/confusion-SPLIT.png (""), or "none" for no picture
    plot = "" if args.plot is None else None if args.plot.lower() == "none" else args.plot
    m = evaluate_run(
        args.run_dir,
        data=args.data,
        split=args.split,
        which=args.checkpoint,
        device=args.device,
        plot=plot,
    )
    if args.json:
        print(json.dumps(m))
        return 0
    print(f"{'data':<18}{m['data']}\n{'checkpoint':<18}{m['checkpoint']}")
    ratio = m["imbalance"]["ratio"]
    print(f"{'examples':<18}{m['examples']:,}  (class ratio largest/smallest {ratio})")
    print(f"\n{'':<26}{'accuracy':>10}{'macro-F1':>10}")
    print(f"{'model':<26}{m['accuracy']:>10.4f}{m['macro_f1']:>10.4f}")
    major = m["majority"]
    label = f"majority ({major['class'][:12]})"
    print(f"{label:<26}{major['accuracy']:>10.4f}{major['macro_f1']:>10.4f}")
    print(f"\n{'class':<20}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}{'share':>8}")
    for name, row in m["per_class"].items():
        share = m["imbalance"]["shares"][name]
        print(
            f"{name[:19]:<20}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
            f"{row['support']:>9}{share:>8.3f}"
        )
    if "confusion_png" in m:
        print(f"\nconfusion matrix: {m['confusion_png']}")
    return 0
