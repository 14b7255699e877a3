"""Conditional generation on the command line: ``train generate``, ``sample``, ``evaluate``.

    rnnkit train generate --data words.csv --condition-col language --target-col word \\
        --out runs/words --time-budget 10m
    rnnkit sample runs/words --condition fi --num-samples 10 --temperature 0.8
"""

from __future__ import annotations

import argparse

from rnnkit.cli.dataclass_args import add_dataclass_flags, build_dataclass
from rnnkit.cli.train_flags import add_train_groups, build_configs, report
from rnnkit.decoding import SamplingConfig
from rnnkit.tasks.generate.task import GenerateDataConfig, GenerateModelConfig

HELP = "a one-to-many generator: a CSV column's category -> a sequence from another column"


FROM_RUN = ("data", "condition_col", "target_col")  # stored in the run: not needed to resume


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    add_train_groups(
        parser, {"data": GenerateDataConfig, "model": GenerateModelConfig}, from_run=FROM_RUN
    )


def train(args, parser) -> int:
    from rnnkit.tasks.generate.run import train_generate

    train_cfg, configs = build_configs(
        args, parser, (GenerateModelConfig, GenerateDataConfig), from_run=FROM_RUN
    )
    model_cfg, data_cfg = configs or (None, None)
    result = train_generate(model_cfg, data_cfg, train_cfg)
    return report(result, count="tokens", best="loss (nats/token)")


def add_sample_flags(parser) -> None:
    parser.add_argument("--condition", default=None, help="generate for this condition value")
    parser.add_argument("--num-samples", type=int, default=10, help="how many to generate")
    parser.add_argument("--max-length", type=int, default=50, help="the most tokens per sample")
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: sample or greedy)")
    add_dataclass_flags(parser, SamplingConfig)


def sample(args, parser) -> int:
    from rnnkit.tasks.generate.run import generate_texts, load_model

    if args.condition is None:
        _, _, conditions, _ = load_model(args.run_dir, args.checkpoint, args.device)
        raise ValueError(f"--condition is required; this run knows: {', '.join(conditions)}")
    sampling = build_dataclass(SamplingConfig, args, parser)
    model, vocab, conditions, _ = load_model(args.run_dir, args.checkpoint, args.device)
    for text in generate_texts(
        model,
        vocab,
        conditions,
        args.condition,
        num=args.num_samples,
        sampling=None if args.beam > 1 else sampling,
        beam=args.beam,
        max_length=args.max_length,
    ):
        print(text)
    return 0


def evaluate(args, parser) -> int:
    import json

    from rnnkit.tasks.generate.run import evaluate_run

    if args.data is not None:
        raise ValueError("a generate run is scored on its own table's splits; drop --data")
    m = evaluate_run(args.run_dir, split=args.split, which=args.checkpoint, device=args.device)
    if args.json:
        print(json.dumps(m))
        return 0
    print(f"{'data':<22}{m['data']}\n{'checkpoint':<22}{m['checkpoint']}")
    print(f"{'rows scored':<22}{m['items']:,}")
    print(f"{'model':<22}{m['loss']:.4f} nats/token")
    print(f"{'unigram baseline':<22}{m['unigram_loss']:.4f} nats/token")
    return 0
