"""Balanced multinomial logistic regressions for the route classifier, fitted at build.

Why a module of its own: one build fits up to eight of them (the embedding's and the lexical
model's, per held-out fold and once on every row), and on 15,000 utterances of 150 routes the
lexical ones dominate the build. Three things keep them cheap without changing what they
converge to:

- Only the hashed buckets some training row uses are fitted. A bucket no row uses has a zero
  gradient from the data and only the L2 penalty on it, so its optimal weight is exactly 0;
  leaving it out shrinks every L-BFGS step (15,000 CLINC150 utterances use 27,235 of 32,768).
- Independent fits run on two processes when they are large (``PARALLEL_WORK``); small ones
  stay in process, where starting a worker would cost more than the fit.
- A fit may start from another model's weights (``start``): the route classifier starts its
  final lexical model from the mean of fold models, which needs about half the iterations.
  The start only shortens the path; the stopping rule is the same.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Multiply-adds of one pass over a problem (nonzeros, or rows x features, times columns)
# from which a batch of fits is spread over processes: the lexical model of 15,000 CLINC150
# utterances is ~290 M (about 0.5 s a pass, ~30 passes), the default routes' ~5 M (well
# under a second in all). A worker costs about a second to start.
PARALLEL_WORK = 50_000_000
MAX_WORKERS = 2
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

    @property
    def work(self) -> int:
        """Multiply-adds of one pass over the rows."""
        size = self.x.nnz if hasattr(self.x, "nnz") else self.x.shape[0] * self.x.shape[1]
        return int(size) * self.columns


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


def fit_all(problems: Sequence[Problem]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every problem's solution, in order; over processes when the batch is large.

    The same problems give the same weights either way: each fit is single-threaded and
    deterministic, wherever it runs.
    """
    workers = min(MAX_WORKERS, len(problems), os.cpu_count() or 1)
    if workers < 2 or sum(problem.work for problem in problems) < PARALLEL_WORK:
        return [fit(problem) for problem in problems]
    from joblib import Parallel, delayed

    # Largest first, so the two workers finish at about the same time.
    order = sorted(range(len(problems)), key=lambda i: -problems[i].work)
    solved = Parallel(n_jobs=workers)(delayed(fit)(problems[i]) for i in order)
    out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0))] * len(problems)
    for i, solution in zip(order, solved, strict=True):
        out[i] = solution
    return out
