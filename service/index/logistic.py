"""Balanced multinomial logistic regressions for the route classifier, fitted at build.

Why a module of its own: one build fits up to eight of them (the embedding's and the lexical
model's, per held-out fold and once on every row), and on 15,000 utterances of 150 routes the
lexical ones dominate the build. Two things keep them cheaper without changing what they
converge to:

- Only the hashed buckets some training row uses are fitted. A bucket no row uses has a zero
  gradient from the data and only the L2 penalty on it, so its optimal weight is exactly 0;
  leaving it out shrinks every L-BFGS step (15,000 CLINC150 utterances use 27,235 of 32,768).
- A fit may start from another model's weights (``start``): the route classifier starts its
  final lexical model from the mean of fold models, which needs about half the iterations.
  The start only shortens the path; the stopping rule is the same.

Fits run one after the other on one thread. Two fits on two processes were slower on the
shared 2-core build machine (classifier fit on CLINC150 train 63 s against 52 s, load
average 3.5): each lexical fit streams hundreds of megabytes of L-BFGS history per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_ITER = 2000


@dataclass(frozen=True)
class Problem:
    """One logistic regression: rows (dense array or SciPy CSR), labels 0..columns-1, the
    inverse regularisation ``c``, and optionally a start ((features, columns), (columns,))."""

    x: Any
    labels: np.ndarray
    columns: int
    c: float
    start: tuple[np.ndarray, np.ndarray] | None = None


def fit(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(weights (features, columns), bias (columns,)) of a class-balanced logistic regression.

    A class absent from the labels gets a bias that never wins.
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x, labels, columns = problem.x, problem.labels, problem.columns
    weights = np.zeros((x.shape[1], columns), dtype=np.float32)
    bias = np.full(columns, -1e4, dtype=np.float32)
    classes = np.unique(labels).astype(int)
    if len(classes) == 1:  # one route (or one route in a fold): it always wins
        bias[classes[0]] = 0.0
        return weights, bias
    used = np.unique(x.indices) if hasattr(x, "indices") else np.arange(x.shape[1])
    if len(used) < x.shape[1]:
        x = x[:, used]
    model = LogisticRegression(C=problem.c, max_iter=MAX_ITER, class_weight="balanced")
    if problem.start is not None and len(classes) > 2:
        start_weights, start_bias = problem.start
        model.set_params(warm_start=True)
        model.coef_ = start_weights[np.ix_(used, classes)].T.astype(np.float64)
        model.intercept_ = start_bias[classes].astype(np.float64)
    # lbfgs over 150 routes is fastest single-threaded on a busy 2-core machine.
    with threadpool_limits(limits=1):
        model.fit(x, labels)
    if len(classes) == 2:  # sklearn keeps one row for a binary problem
        weights[used, classes[1]], bias[classes[1]] = model.coef_[0], model.intercept_[0]
        bias[classes[0]] = 0.0
    else:
        weights[np.ix_(used, classes)] = model.coef_.T
        bias[classes] = model.intercept_
    return weights, bias
