"""Non-recurrent baselines for text classification, to put a recurrent model's figure in context.

``BagOfWordsLogReg``: logistic regression on which words a text contains (binary features, the
classic bag-of-words; with ``ngrams=2`` word pairs too), trained with L2 regularisation by
L-BFGS, the strength chosen on the validation split. Order is lost, which is what a recurrent
model should win back. Torch only.

``TfidfLogReg`` (scikit-learn, the ``baselines`` extra): TF-IDF weighted word 1-2-grams or
character 2-5-grams and a logistic regression, ``C`` chosen on validation; the two baselines
``rnnkit evaluate`` puts beside a text classifier (``tfidf_baselines``). The character one is
hard to beat on short strings, where words are rare or unknown.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
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


# -- TF-IDF logistic regressions (scikit-learn, the ``baselines`` extra) ------------------------

# what each baseline reads: word unigrams and bigrams; character 2-5-grams inside word bounds
# (``char_wb``), the strong classic for short or noisy strings
TFIDF_KINDS = {
    "word": {"analyzer": "word", "ngram_range": (1, 2), "token_pattern": r"(?u)\b\w+\b|[^\w\s]"},
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5)},
}
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
"""Candidate inverse L2 strengths of the logistic regression; the best on validation wins."""


def require_sklearn():
    """The scikit-learn module, or an ImportError that names the extra."""
    try:
        import sklearn
    except ImportError as e:
        raise ImportError(
            "the TF-IDF baselines need scikit-learn: pip install 'rnnkit[baselines]'"
        ) from e
    return sklearn


@dataclass
class TfidfLogReg:
    """TF-IDF features (``kind``: ``word`` or ``char`` n-grams, sublinear counts) and an L2
    logistic regression, its ``C`` chosen on validation; ``fit`` then ``predict``."""

    kind: str = "word"
    c_grid: tuple[float, ...] = C_GRID
    C: float | None = None
    val_accuracy: float | None = None

    def fit(self, texts: list[str], labels, val_texts: list[str], val_labels):
        require_sklearn()
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if self.kind not in TFIDF_KINDS:
            raise ValueError(f"a TF-IDF baseline reads word or char n-grams, not {self.kind!r}")
        self._vectorizer = TfidfVectorizer(
            lowercase=True, sublinear_tf=True, dtype=np.float64, **TFIDF_KINDS[self.kind]
        )
        x, xv = self._vectorizer.fit_transform(texts), self._vectorizer.transform(val_texts)
        y, yv = np.asarray(labels), np.asarray(val_labels)
        best = None
        for c in self.c_grid:
            if len(set(y.tolist())) < 2:  # one class: nothing to fit, answer it
                break
            clf = LogisticRegression(C=c, max_iter=2000).fit(x, y)
            acc = float((clf.predict(xv) == yv).mean())
            if best is None or acc > best[0]:
                best = (acc, c, clf)
        if best is None:
            self._constant = int(y[0])
            self._clf, self.C, self.val_accuracy = None, None, float((yv == y[0]).mean())
        else:
            self.val_accuracy, self.C, self._clf = best
        return self

    def predict(self, texts: list[str]) -> Tensor:
        if self._clf is None:
            return torch.full((len(texts),), self._constant, dtype=torch.long)
        return torch.as_tensor(
            self._clf.predict(self._vectorizer.transform(texts)), dtype=torch.long
        )


def tfidf_baselines(
    train: tuple[list[str], Tensor], val: tuple[list[str], Tensor], scored: list[str]
) -> dict[str, dict]:
    """The predictions on ``scored`` of the word and the character TF-IDF logistic regression,
    each fitted on ``train`` (texts, label ids) with ``C`` chosen on ``val``:
    ``{"tfidf_word": {"pred": ids, "C": c, "val_accuracy": a}, "tfidf_char": ...}``."""
    out = {}
    for kind in TFIDF_KINDS:
        model = TfidfLogReg(kind).fit(train[0], train[1].tolist(), val[0], val[1].tolist())
        out[f"tfidf_{kind}"] = {
            "pred": model.predict(scored),
            "C": model.C,
            "val_accuracy": model.val_accuracy,
        }
    return out
