"""Non-recurrent baselines for text classification, to put a recurrent model's figure in context.

``BagOfWordsLogReg``: logistic regression on which words a text contains (binary features, the
classic bag-of-words; with ``ngrams=2`` word pairs too), trained with L2 regularisation by
L-BFGS, the strength chosen on the validation split. Order is lost, which is what a recurrent
model should win back.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.text.tokens import tokenize


def _grams(text: str, ngrams: int) -> list[str]:
    words = tokenize(text, "word")
    grams = list(words)
    if ngrams >= 2:
        grams += [f"{a} {b}" for a, b in itertools.pairwise(words)]
    return grams


@dataclass
class BagOfWordsLogReg:
    """Binary bag-of-words logistic regression; ``fit`` then ``predict``."""

    ngrams: int = 1
    min_count: int = 1
    l2_grid: tuple[float, ...] = (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    """Candidate L2 strengths (per example, on the mean loss); the best on validation wins."""
    vocab: dict[str, int] = field(default_factory=dict)
    weight: Tensor | None = None
    l2: float | None = None

    def features(self, texts: list[str]) -> Tensor:
        rows, cols = [], []
        for row, text in enumerate(texts):
            for col in {self.vocab[g] for g in _grams(text, self.ngrams) if g in self.vocab}:
                rows.append(row)
                cols.append(col)
        n = len(self.vocab) + 1  # the last column is the bias
        rows += list(range(len(texts)))
        cols += [n - 1] * len(texts)
        index = torch.tensor([rows, cols], dtype=torch.long)
        values = torch.ones(len(rows), dtype=torch.float64)
        return torch.sparse_coo_tensor(
            index, values, (len(texts), n), check_invariants=False
        ).coalesce()

    def _train(self, x: Tensor, y: Tensor, n_classes: int, l2: float) -> Tensor:
        w = torch.zeros(x.size(1), n_classes, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS(
            [w],
            lr=1,
            max_iter=300,
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-7,
        )

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(torch.sparse.mm(x, w), y) + l2 * w[:-1].pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return w.detach()

    def fit(self, texts, labels: Tensor, val_texts, val_labels: Tensor, n_classes: int):
        counts = Counter(g for text in texts for g in set(_grams(text, self.ngrams)))
        kept = sorted(g for g, c in counts.items() if c >= self.min_count)
        self.vocab = {g: i for i, g in enumerate(kept)}
        x, xv = self.features(texts), self.features(val_texts)
        best = None
        for l2 in self.l2_grid:
            w = self._train(x, labels, n_classes, l2)
            acc = float((torch.sparse.mm(xv, w).argmax(1) == val_labels).double().mean())
            if best is None or acc > best[0]:
                best = (acc, l2, w)
        _, self.l2, self.weight = best  # type: ignore[misc]
        return self

    def predict(self, texts: list[str]) -> Tensor:
        return torch.sparse.mm(self.features(texts), self.weight).argmax(1)
