"""The seq2seq task on the command line: ``train seq2seq``, ``predict``, ``evaluate``.

rnnkit train seq2seq --data pairs.tsv --out runs/tr --time-budget 10m
echo "hello" | rnnkit predict runs/tr --beam 5
rnnkit evaluate runs/tr --json --heatmap attention.png --example 3
"""

from __future__ import annotations

import argparse
import sys

from rnnkit.cli.train_flags import add_train_groups, build_configs, report
from rnnkit.tasks.seq2seq.task import Seq2SeqDataConfig, Seq2SeqModelConfig

HELP = "an encoder-decoder with attention on source<TAB>target pairs"


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    add_train_groups(parser, {"data": Seq2SeqDataConfig, "model": Seq2SeqModelConfig})


def train(args, parser) -> int:
    from rnnkit.tasks.seq2seq.run import train_seq2seq

    train_cfg, configs = build_configs(
        args,
        parser,
        (Seq2SeqModelConfig, Seq2SeqDataConfig),
        hint=" (a source<TAB>target file, or cmudict)",
    )
    model_cfg, data_cfg = configs or (None, None)
    result = train_seq2seq(model_cfg, data_cfg, train_cfg)
    val = result.last_val
    tail = ""
    if "token_error_rate" in val:
        tail = (
            f"; last validation: token error {100 * val['token_error_rate']:.2f} %, "
            f"sequence error {100 * val['sequence_error_rate']:.2f} %"
        )
    return report(result, count="target tokens", best="loss", tail=tail)


def _add_decoding_flags(parser) -> None:
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy decoding)")
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="beam scores are log-probabilities / length ** this (default: 1.0)",
    )


def add_predict_flags(parser) -> None:
    parser.add_argument(
        "--input", default=None, help="read sources from this file, one per line (default: stdin)"
    )
    _add_decoding_flags(parser)


def predict(args, parser) -> int:
    from rnnkit.tasks.seq2seq.run import predict as run_predict

    if args.input is None:
        lines = sys.stdin.read().splitlines()
    else:
        try:
            with open(args.input, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise ValueError(f"--input {args.input}: not UTF-8 text (byte {e.start})") from None
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise ValueError("nothing to predict: no non-empty input lines")
    outputs = run_predict(
        args.run_dir,
        lines,
        beam=args.beam,
        length_penalty=args.length_penalty,
        which=args.checkpoint,
        device=args.device,
    )
    for source, output in zip(lines, outputs):
        print(f"{source}\t{output}")
    return 0


def add_evaluate_flags(parser) -> None:
    _add_decoding_flags(parser)
    parser.add_argument(
        "--heatmap", default=None, help="write the attention heat map of one example to this PNG"
    )
    parser.add_argument(
        "--example", type=int, default=0, help="which scored source the heat map shows (index)"
    )


def evaluate(args, parser) -> int:
    import json

    from rnnkit.tasks.seq2seq.run import evaluate_run

    m = evaluate_run(
        args.run_dir,
        data=args.data,
        split=args.split,
        which=args.checkpoint,
        device=args.device,
        beam=getattr(args, "beam", 1),
        length_penalty=getattr(args, "length_penalty", 1.0),
        heatmap=getattr(args, "heatmap", None),
        example=getattr(args, "example", 0),
    )
    if args.json:
        print(json.dumps(m))
        return 0
    print(f"{'data':<24}{m['data']}\n{'checkpoint':<24}{m['checkpoint']}")
    print(f"{'sequences scored':<24}{m['sequences']:,}   (beam {m['beam']})")
    print(f"{'':<24}{'loss':>10}{'token err':>12}{'seq err':>10}")
    print(
        f"{'model':<24}{m['loss']:>10.4f}{100 * m['token_error_rate']:>11.2f}%"
        f"{100 * m['sequence_error_rate']:>9.2f}%"
    )
    print(
        f"{'most frequent target':<24}{'':>10}{100 * m['baseline_token_error_rate']:>11.2f}%"
        f"{100 * m['baseline_sequence_error_rate']:>9.2f}%"
    )
    if "heatmap" in m:
        ex = m["example"]
        print(f"attention of {ex['source']!r} -> {ex['output']!r}: {m['heatmap']}")
    return 0
