"""``rnnkit``: the command line, a thin face over the library.

    rnnkit train lm --data shakespeare --out runs/shk --time-budget 5m
    rnnkit sample runs/shk --prime "ROMEO:" --temperature 0.8
    rnnkit evaluate runs/shk --split test --json
    rnnkit plot runs/shk
    rnnkit datasets

Every flag comes from a config dataclass (``rnnkit.cli.dataclass_args``); every verb is one
library call.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from rnnkit.cli.dataclass_args import add_dataclass_flags, build_dataclass
from rnnkit.generate.decoding import SamplingConfig
from rnnkit.tasks.language_model import LMDataConfig, LMModelConfig
from rnnkit.training.config import TrainConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnkit", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train a model").add_subparsers(
        dest="task", required=True, metavar="TASK"
    )
    lm = train.add_parser(
        "lm",
        help="a character (or byte) language model on text",
        description="Train a character-level language model.",
    )
    add_dataclass_flags(lm.add_argument_group("data"), LMDataConfig)
    add_dataclass_flags(lm.add_argument_group("model"), LMModelConfig)
    add_dataclass_flags(lm.add_argument_group("training"), TrainConfig)
    for action in lm._actions:  # --data may come from the run itself with --resume
        if action.dest == "data":
            action.required = False

    sample = verbs.add_parser("sample", help="generate text from a trained language model")
    sample.add_argument("run_dir", help="the run folder")
    sample.add_argument("--prime", default="", help="text to start from (default: a newline)")
    sample.add_argument("--length", type=int, default=500, help="tokens to generate")
    sample.add_argument("--checkpoint", choices=["best", "last"], default="best")
    sample.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    add_dataclass_flags(sample, SamplingConfig)

    evaluate = verbs.add_parser("evaluate", help="loss and bits per character on held-out text")
    evaluate.add_argument("run_dir", help="the run folder")
    evaluate.add_argument(
        "--data",
        default=None,
        help="score this text (file, folder, glob or data set) instead of a split",
    )
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--checkpoint", choices=["best", "last"], default="best")
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument(
        "--json", action="store_true", help="print the metrics as one JSON object"
    )

    plot = verbs.add_parser("plot", help="draw a run's loss curve (loss.png)")
    plot.add_argument("run_dir")
    plot.add_argument("--out", default=None, help="where to write the PNG")

    verbs.add_parser("datasets", help="list the named data sets")
    return parser


def _train_lm(args, parser) -> int:
    from rnnkit.tasks.lm_runs import train_lm

    train_cfg = build_dataclass(TrainConfig, args, parser)
    if train_cfg.resume:
        model_cfg = data_cfg = None
    else:
        if args.data is None:
            parser.error("--data is required (a data-set name, a file, a folder or a glob)")
        model_cfg = build_dataclass(LMModelConfig, args, parser)
        data_cfg = build_dataclass(LMDataConfig, args, parser)
    result = train_lm(model_cfg, data_cfg, train_cfg)
    c = result.counters
    print(
        f"{'interrupted' if result.interrupted else 'done'}: {c.step} steps, "
        f"{c.tokens:,} tokens, {c.elapsed:.0f} s; best validation loss {c.best_val:.4f} nats "
        f"at step {c.best_step}; run folder {result.run_dir}"
    )
    return 130 if result.interrupted else 0


def _sample(args, parser) -> int:
    from rnnkit.generate.sample import sample_text
    from rnnkit.tasks.lm_runs import load_model

    sampling = build_dataclass(SamplingConfig, args, parser)
    model, vocab, _ = load_model(args.run_dir, args.checkpoint, args.device)

    def write(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    write(args.prime)
    sample_text(model, vocab, prime=args.prime, length=args.length, sampling=sampling, write=write)
    write("\n")
    return 0


def _evaluate(args, parser) -> int:
    from rnnkit.tasks.lm_runs import evaluate_run

    m = evaluate_run(
        args.run_dir, data=args.data, split=args.split, which=args.checkpoint, device=args.device
    )
    if args.json:
        print(json.dumps(m))
        return 0
    print(
        f"{'data':<22}{m['data']}\n{'checkpoint':<22}{m['checkpoint']}\n"
        f"{'tokens scored':<22}{m['tokens']:,}"
    )
    print(f"{'':<22}{'nats/token':>12}{'bits/token':>12}")
    print(f"{'model':<22}{m['loss']:>12.4f}{m['bpc']:>12.4f}")
    print(f"{'unigram baseline':<22}{m['unigram_loss']:>12.4f}{m['unigram_bpc']:>12.4f}")
    return 0


def _plot(args, parser) -> int:
    from rnnkit.training.plot import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0


def _datasets(args, parser) -> int:
    from rnnkit.datasets import get_spec, list_datasets

    for name in list_datasets():
        spec = get_spec(name)
        print(f"{name:<16}{spec.description}  [{spec.licence}]")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # say when a data set is being downloaded (once) rather than hang silently
    log = logging.getLogger("rnnkit.datasets")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    handlers = {"sample": _sample, "evaluate": _evaluate, "plot": _plot, "datasets": _datasets}
    handler = _train_lm if args.verb == "train" else handlers[args.verb]
    from rnnkit.datasets import CorpusError, DatasetError
    from rnnkit.training.checkpoint import CheckpointError

    try:
        return handler(args, parser)
    except (
        CorpusError,
        DatasetError,
        CheckpointError,
        FileExistsError,
        FileNotFoundError,
        ValueError,
        FloatingPointError,
        ImportError,
    ) as e:
        print(f"rnnkit {args.verb}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
