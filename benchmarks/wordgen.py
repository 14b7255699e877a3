"""One-to-many on real data: a language -> a new word in that language's style.

Data: the ``wordfreq`` data set (11 languages' frequent words, see ``rnnkit datasets``), rows
``language,word``, split at random by row (``--split-seed 0``): 75 % trains the generator, 5 %
validates it, and the held-out 20 % ("real held-out words") is never seen by the generator.

1. The generator: ``OneToMany`` (the language's embedding sets the initial state of an LSTM and
   is fed at every step), trained with ``rnnkit``'s trainer for ``--time-budget``.
2. A judge: a character-level bidirectional GRU classifier, trained here on 80 % of the real
   held-out words and scored on the other 20 % (its accuracy on real words is the reference).
3. ``--per-language`` words are sampled per language; the judge labels them. The accuracy on
   generated words is printed beside chance (1 / 11) and beside the judge's accuracy on real
   words, with the confusion matrix, and the share of generated words that copy a training word.

Run (the figures in docs/seq2seq.md came from this, on one CPU thread)::

    OMP_NUM_THREADS=1 python benchmarks/wordgen.py --out runs/wordgen --time-budget 8m
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import rnnkit
from rnnkit.datasets.padding import pad_batch
from rnnkit.decoding import SamplingConfig
from rnnkit.tasks.generate.run import generate_texts, load_model, make_task, train_generate
from rnnkit.tasks.generate.task import GenerateDataConfig, GenerateModelConfig
from rnnkit.text.tokens import TokenVocab
from rnnkit.training.config import TrainConfig


class CharClassifier(nn.Module):
    """Characters -> embedding -> bidirectional GRU -> final states -> language."""

    def __init__(self, vocab_size: int, num_classes: int, hidden_size: int = 128) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 48, padding_idx=0)
        self.rnn = rnnkit.GRU(48, hidden_size, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(self.embedding(ids), lengths=lengths)  # h (2, B, H)
        return self.head(torch.cat([h[0], h[1]], -1))


def encode(words: list[str], vocab: TokenVocab) -> tuple[torch.Tensor, torch.Tensor]:
    return pad_batch([vocab.encode(w) or [vocab.unk_id] for w in words])


def train_judge(words, labels, num_classes, vocab, seconds, seed=0) -> CharClassifier:
    torch.manual_seed(seed)
    model = CharClassifier(len(vocab), num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    rng = random.Random(seed)
    order = list(range(len(words)))
    start, epoch = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        rng.shuffle(order)
        for i in range(0, len(order), 64):
            batch = order[i : i + 64]
            ids, lengths = encode([words[j] for j in batch], vocab)
            loss = F.cross_entropy(model(ids, lengths), torch.tensor([labels[j] for j in batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch += 1
    print(f"judge: {epoch} epochs over {len(words)} real held-out words")
    return model.eval()


@torch.no_grad()
def classify(model: CharClassifier, words: list[str], vocab: TokenVocab) -> list[int]:
    out = []
    for i in range(0, len(words), 256):
        ids, lengths = encode(words[i : i + 256], vocab)
        out += model(ids, lengths).argmax(-1).tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/wordgen")
    parser.add_argument("--time-budget", default="8m", help="generator training time")
    parser.add_argument("--judge-seconds", type=float, default=240)
    parser.add_argument("--per-language", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_cfg = GenerateModelConfig(hidden_size=256, embedding_size=64, condition_embedding_size=32)
    data_cfg = GenerateDataConfig(
        data="wordfreq",
        condition_col="language",
        target_col="word",
        val_fraction=0.05,
        test_fraction=0.2,
    )
    out = Path(args.out)
    t0 = time.perf_counter()
    if not (out / "best.safetensors").exists():
        train_generate(
            model_cfg,
            data_cfg,
            TrainConfig(
                out=str(out),
                time_budget=args.time_budget,
                batch_size=64,
                lr=3e-3,
                eval_every=500,
                checkpoint_every=500,
                progress=False,
            ),
        )
    gen_seconds = time.perf_counter() - t0
    model, vocab, languages, stored = load_model(out)
    task = make_task(model_cfg, data_cfg, batch_size=64, stored=stored)
    val = task.evaluate(model, "test")
    print(
        f"generator: {val['loss']:.3f} nats/char on the real held-out words "
        f"(unigram baseline {val['unigram_loss']:.3f}); trained {gen_seconds / 60:.1f} min"
    )

    # the judge learns from the words the generator never saw
    held = task.splits["test"]
    rng = random.Random(0)
    rng.shuffle(held)
    cut = int(0.8 * len(held))
    index = {lang: i for i, lang in enumerate(languages)}
    judge_vocab = TokenVocab.build([w for _, w in held[:cut]], "char")
    judge = train_judge(
        [w for _, w in held[:cut]],
        [index[c] for c, _ in held[:cut]],
        len(languages),
        judge_vocab,
        args.judge_seconds,
    )
    real_pred = classify(judge, [w for _, w in held[cut:]], judge_vocab)
    real_acc = sum(p == index[c] for p, (c, _) in zip(real_pred, held[cut:])) / len(real_pred)

    generated, gold = [], []
    for lang in languages:
        words = generate_texts(
            model,
            vocab,
            languages,
            lang,
            num=args.per_language,
            sampling=SamplingConfig(temperature=args.temperature, seed=index[lang]),
            max_length=30,
        )
        generated += words
        gold += [index[lang]] * len(words)
    pred = classify(judge, generated, judge_vocab)
    acc = sum(p == g for p, g in zip(pred, gold)) / len(gold)
    train_words = {w for _, w in task.splits["train"]}
    all_words = {w for _, w in task.splits["train"] + task.splits["val"] + task.splits["test"]}
    copies = sum(w in train_words for w in generated) / len(generated)
    known = sum(w in all_words for w in generated) / len(generated)

    print(f"\nlanguages: {', '.join(languages)} (chance = {100 / len(languages):.1f} %)")
    print(f"judge accuracy on real held-out words:  {100 * real_acc:.1f} %  ({len(real_pred)})")
    print(f"judge accuracy on generated words:      {100 * acc:.1f} %  ({len(generated)})")
    print(f"generated words that copy a training word: {100 * copies:.1f} %")
    print(f"generated words found in any list (train, val or test): {100 * known:.1f} %")
    print("\nconfusion (rows: asked-for language, columns: judged language)")
    print("      " + "".join(f"{lang:>5}" for lang in languages))
    for i, lang in enumerate(languages):
        row = [
            sum(1 for p, g in zip(pred, gold) if g == i and p == j) for j in range(len(languages))
        ]
        print(f"{lang:>5} " + "".join(f"{n:>5}" for n in row))
    print("\nexamples (first 8 per language):")
    for i, lang in enumerate(languages):
        words = generated[i * args.per_language : i * args.per_language + 8]
        print(f"  {lang}: {' '.join(words)}")
    print(f"\ntotal wall time {(time.perf_counter() - t0) / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "judge_real_accuracy": real_acc,
                    "judge_generated_accuracy": acc,
                    "chance": 1 / len(languages),
                    "copies": copies,
                    "known": known,
                    "generator_test_loss": val["loss"],
                    "unigram_loss": val["unigram_loss"],
                }
            )
        )


if __name__ == "__main__":
    main()
