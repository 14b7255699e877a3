"""The language-model task on the command line: ``train lm``, ``sample``, ``evaluate``.

A task's CLI module gives ``main`` the same few names (see ``rnnkit.cli.main``): ``HELP``,
``add_train_flags``/``train``, and for each run verb it serves (``evaluate``, ``predict``,
``sample``) an ``add_<verb>_flags`` and a ``<verb>`` function.
"""

from __future__ import annotations

import argparse
import sys

from rnnkit.cli.dataclass_args import add_dataclass_flags, build_dataclass
from rnnkit.cli.train_flags import add_train_groups, build_configs, report
from rnnkit.decoding import SamplingConfig
from rnnkit.tasks.lm.task import LMDataConfig, LMModelConfig

HELP = "a character (or byte) language model on text"


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    add_train_groups(parser, {"data": LMDataConfig, "model": LMModelConfig})


def train(args, parser) -> int:
    from rnnkit.tasks.lm.run import train_lm

    train_cfg, configs = build_configs(
        args,
        parser,
        (LMModelConfig, LMDataConfig),
        hint=" (a data-set name, a file, a folder or a glob)",
    )
    model_cfg, data_cfg = configs or (None, None)
    return report(train_lm(model_cfg, data_cfg, train_cfg), count="tokens", best="loss (nats)")


def add_sample_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prime", default="", help="text to start from (default: a newline)")
    parser.add_argument("--length", type=int, default=500, help="tokens to generate")
    add_dataclass_flags(parser, SamplingConfig)


def sample(args, parser) -> int:
    from rnnkit.decoding import sample_text
    from rnnkit.tasks.lm.run import load_model

    sampling = build_dataclass(SamplingConfig, args, parser)
    model, vocab, _ = load_model(args.run_dir, args.checkpoint, args.device)

    def write(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    write(args.prime)
    sample_text(model, vocab, prime=args.prime, length=args.length, sampling=sampling, write=write)
    write("\n")
    return 0


def evaluate(args, parser) -> int:
    import json

    from rnnkit.tasks.lm.run import evaluate_run

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
