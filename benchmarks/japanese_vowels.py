"""JapaneseVowels speaker identification: rnnkit's classifier against the published figures.

Which of 9 speakers said a Japanese vowel, from 12 LPC cepstrum coefficients per frame (7-29
frames). The published split: 270 training series (3 per speaker held out here for validation)
and 370 test series. For each seed the script trains ``rnnkit train classify`` with the settings
below, then scores the best-validation checkpoint on the test set, and prints every seed, their
mean and spread, beside the majority-class baseline and published accuracies: DTW 1-NN 94.9 %,
ROCKET 96.2 %, LSTM-FCN 99 % (the UEA/UCR archive papers' figures).

Run: ``python benchmarks/japanese_vowels.py [--seeds 0,1,2,3,4] [--steps 300] [--json F]``.
Downloads the sktime 1.2.0 wheel once (8 MB; only the two data files are kept).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from rnnkit.tasks.classify.run import evaluate_run, train_classify
from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig
from rnnkit.training.config import TrainConfig

PUBLISHED = {"DTW 1-NN": 0.949, "ROCKET": 0.962, "LSTM-FCN": 0.99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--pooling", default="last")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = ClassifyModelConfig(
        cell=args.cell, hidden_size=args.hidden_size, pooling=args.pooling, dropout=0.3
    )
    data = ClassifyDataConfig(data="japanese-vowels")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            start = time.perf_counter()
            cfg = TrainConfig(
                out=f"{tmp}/seed{seed}",
                max_steps=args.steps,
                batch_size=16,
                lr=3e-3,
                eval_every=50,
                seed=seed,
                device="cpu",
                progress=False,
            )
            train_classify(model, data, cfg)
            m = evaluate_run(cfg.out, split="test", plot=None)
            rows.append(
                {
                    "seed": seed,
                    "accuracy": m["accuracy"],
                    "macro_f1": m["macro_f1"],
                    "seconds": time.perf_counter() - start,
                }
            )
            print(
                f"seed {seed}: test accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} "
                f"({rows[-1]['seconds']:.0f} s)",
                flush=True,
            )
    accs = [r["accuracy"] for r in rows]
    mean = statistics.mean(accs)
    spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
    print(f"\nJapaneseVowels test (370 series), {args.cell} {args.hidden_size}, {args.steps} steps")
    print(f"{'rnnkit ' + args.cell + ' (mean of seeds)':<34}{mean:.4f} +- {spread:.4f}")
    print(f"{'rnnkit worst seed':<34}{min(accs):.4f}")
    print(f"{'majority class of training':<34}{m['majority']['accuracy']:.4f}")
    for name, acc in PUBLISHED.items():
        print(f"{'published ' + name:<34}{acc:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seeds": rows, "mean": mean, "std": spread, "published": PUBLISHED}, f)


if __name__ == "__main__":
    main()
