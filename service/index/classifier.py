"""The linear route classifier and its calibration: fitted at index build, applied per prompt.

Why this and not nearest neighbours alone: a sentence embedding mostly encodes topic, and a
route is a task. A multinomial logistic regression over the utterance embeddings learns
which directions separate the tasks, and on CLINC150 val it is right far more often than
top-k cosine voting (0.96 vs 0.86 closed-set accuracy).

Out-of-scope detection combines two scores that fail differently: the energy of the logits
(logsumexp: no route claims the prompt strongly) and the squared distance to the nearest
route centroid (the prompt lies away from every route's examples). Each is standardised on
held-out in-scope examples and averaged into one in-scope score ``s``; the acceptance
threshold is the quantile of ``s`` that accepts a fixed share (97 %) of held-out in-scope
prompts. That rule needs no out-of-scope examples and does not depend on how common
out-of-scope prompts are, which makes it stable across datasets; ``confidence`` is a
logistic (Platt) map of ``s`` fitted on whether held-out decisions were right.

Fitting uses scikit-learn; applying is two small matrix products in NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_C = 10.0
DEFAULT_ACCEPT_RATE = 0.97
# Per-route thresholds are shrunk towards the global one by this many pseudo-examples, so
# a route with a handful of held-out prompts does not get an arbitrary threshold.
SHRINK_EXAMPLES = 20


@dataclass(frozen=True)
class LinearModel:
    """Logistic-regression weights plus route centroids, over L2-normalised embeddings."""

    weights: np.ndarray  # (dimension, n_routes)
    bias: np.ndarray  # (n_routes,)
    centroids: np.ndarray  # (n_routes, dimension)

    def raw_scores(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits (n, routes), in-scope features (n, 2): energy and -min squared distance)."""
        logits = queries @ self.weights + self.bias
        peak = logits.max(axis=1, keepdims=True)
        energy = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
        squared = (
            (queries**2).sum(axis=1)[:, None]
            - 2 * queries @ self.centroids.T
            + (self.centroids**2).sum(axis=1)[None, :]
        )
        return logits, np.stack([energy, -squared.min(axis=1)], axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "bias": self.bias, "centroids": self.centroids}

    @classmethod
    def from_arrays(cls, arrays: Any) -> LinearModel:
        return cls(
            weights=np.asarray(arrays["weights"], dtype=np.float32),
            bias=np.asarray(arrays["bias"], dtype=np.float32),
            centroids=np.asarray(arrays["centroids"], dtype=np.float32),
        )


@dataclass(frozen=True)
class Calibration:
    """How to turn raw features into an in-scope score, thresholds and a confidence."""

    feature_mean: tuple[float, float]
    feature_std: tuple[float, float]
    threshold: float
    route_thresholds: tuple[float, ...]
    platt: tuple[float, float]  # confidence = sigmoid(a * s + b)
    accept_rate: float
    held_out: int  # in-scope examples the numbers were fitted on
    source: str  # "calibration" (labelled file) or "cross-validation" (utterances only)

    def in_scope(self, features: np.ndarray) -> np.ndarray:
        mean, std = np.asarray(self.feature_mean), np.asarray(self.feature_std)
        return ((features - mean) / std).mean(axis=1)

    def confidence(self, in_scope: np.ndarray) -> np.ndarray:
        a, b = self.platt
        return 1.0 / (1.0 + np.exp(-(a * in_scope + b)))

    def to_json(self) -> dict[str, Any]:
        return {
            "feature_mean": list(self.feature_mean),
            "feature_std": list(self.feature_std),
            "threshold": self.threshold,
            "route_thresholds": list(self.route_thresholds),
            "platt": list(self.platt),
            "accept_rate": self.accept_rate,
            "held_out": self.held_out,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            feature_mean=(float(data["feature_mean"][0]), float(data["feature_mean"][1])),
            feature_std=(float(data["feature_std"][0]), float(data["feature_std"][1])),
            threshold=float(data["threshold"]),
            route_thresholds=tuple(float(t) for t in data["route_thresholds"]),
            platt=(float(data["platt"][0]), float(data["platt"][1])),
            accept_rate=float(data["accept_rate"]),
            held_out=int(data["held_out"]),
            source=str(data["source"]),
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def fit_linear(vectors: np.ndarray, labels: np.ndarray, n_routes: int, c: float) -> LinearModel:
    """Fit the classifier on embeddings; ``labels`` are route positions 0..n_routes-1."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    weights = np.zeros((vectors.shape[1], n_routes), dtype=np.float32)
    bias = np.full(n_routes, -1e4, dtype=np.float32)  # a route absent from the fold never wins
    classes = np.unique(labels).astype(int)
    if len(classes) == 1:  # one route (or one route in a fold): it always wins
        bias[classes[0]] = 0.0
    else:
        # lbfgs over 150 routes is fastest single-threaded on a busy 2-core machine.
        with threadpool_limits(limits=1):
            model = LogisticRegression(C=c, max_iter=2000).fit(vectors, labels)
        if len(classes) == 2:  # sklearn keeps one row for a binary problem
            weights[:, classes[1]], bias[classes[1]] = model.coef_[0], model.intercept_[0]
            bias[classes[0]] = 0.0
        else:
            weights[:, classes] = model.coef_.T
            bias[classes] = model.intercept_
    centroids = np.zeros((n_routes, vectors.shape[1]), dtype=np.float32)
    for route in range(n_routes):
        members = vectors[labels == route]
        centroids[route] = members.mean(axis=0) if len(members) else 1e3
    return LinearModel(weights, bias, centroids)


def _held_out_features(
    vectors: np.ndarray,
    labels: np.ndarray,
    n_routes: int,
    c: float,
    folds: int,
    extra_vectors: np.ndarray | None = None,
    extra_labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(correct?, features) for every row, each scored by a model that never saw it."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(labels, minlength=n_routes)
    smallest = counts[counts > 0].min()
    folds = min(folds, len(labels))
    if folds < 2:  # a single example: nothing can be held out, score it in-sample
        splits: Any = [(np.arange(len(labels)), np.arange(len(labels)))]
    elif smallest >= folds:
        splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(vectors, labels)
    else:
        splits = KFold(folds, shuffle=True, random_state=0).split(vectors, labels)
    correct = np.zeros(len(labels), dtype=bool)
    features = np.zeros((len(labels), 2))
    for train, test in splits:
        train_x, train_y = vectors[train], labels[train]
        if extra_vectors is not None and extra_labels is not None:
            train_x = np.vstack([extra_vectors, train_x])
            train_y = np.concatenate([extra_labels, train_y])
        model = fit_linear(train_x, train_y, n_routes, c)
        logits, feats = model.raw_scores(vectors[test])
        correct[test] = logits.argmax(axis=1) == labels[test]
        features[test] = feats
    return correct, features


def _platt(in_scope: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """Logistic map from the in-scope score to P(decision right); flat if one class only."""
    if correct.all() or not correct.any():
        rate = float(np.clip(correct.mean(), 0.01, 0.99))
        return 0.0, float(np.log(rate / (1 - rate)))
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=1.0).fit(in_scope[:, None], correct.astype(int))
    return float(fitted.coef_[0, 0]), float(fitted.intercept_[0])


def fit(
    vectors: np.ndarray,
    labels: np.ndarray,
    n_routes: int,
    held_out_vectors: np.ndarray | None = None,
    held_out_labels: Sequence[int | None] | None = None,
    c: float = DEFAULT_C,
    accept_rate: float = DEFAULT_ACCEPT_RATE,
) -> tuple[LinearModel, Calibration]:
    """Fit the classifier and calibrate it.

    With labelled held-out prompts (label None = out of scope), their in-scope part is
    cross-fitted in 2 folds against the utterances and then joined to the training data;
    without them, the utterances themselves are cross-validated in 3 folds.
    """
    has_held_out = held_out_vectors is not None and held_out_labels is not None
    in_scope_x = np.zeros((0, vectors.shape[1]), dtype=np.float32)
    in_scope_y = np.zeros(0, dtype=np.int64)
    oos_x = np.zeros((0, vectors.shape[1]), dtype=np.float32)
    if has_held_out:
        assert held_out_vectors is not None and held_out_labels is not None
        mask = np.array([label is not None for label in held_out_labels], dtype=bool)
        in_scope_x = held_out_vectors[mask]
        in_scope_y = np.array(
            [label for label in held_out_labels if label is not None], dtype=np.int64
        )
        oos_x = held_out_vectors[~mask]
    if len(in_scope_y) >= 2 * 2:
        correct, features = _held_out_features(
            in_scope_x, in_scope_y, n_routes, c, folds=2, extra_vectors=vectors, extra_labels=labels
        )
        model = fit_linear(
            np.vstack([vectors, in_scope_x]), np.concatenate([labels, in_scope_y]), n_routes, c
        )
        source, held_labels = "calibration", in_scope_y
    else:
        correct, features = _held_out_features(vectors, labels, n_routes, c, folds=3)
        model = fit_linear(vectors, labels, n_routes, c)
        source, held_labels = "cross-validation", labels
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-9
    in_scope = ((features - mean) / std).mean(axis=1)
    quantile = 1.0 - accept_rate
    threshold = float(np.quantile(in_scope, quantile))
    route_thresholds = []
    for route in range(n_routes):
        scores = in_scope[held_labels == route]
        if len(scores) == 0:
            route_thresholds.append(threshold)
            continue
        own = float(np.quantile(scores, quantile))
        weight = len(scores) / (len(scores) + SHRINK_EXAMPLES)
        route_thresholds.append(weight * own + (1 - weight) * threshold)
    # Confidence learns from held-out decisions, and from out-of-scope prompts when given.
    oos_scores = np.zeros(0)
    if len(oos_x):
        _, oos_features = model.raw_scores(oos_x)
        oos_scores = ((oos_features - mean) / std).mean(axis=1)
    platt = _platt(
        np.concatenate([in_scope, oos_scores]),
        np.concatenate([correct, np.zeros(len(oos_scores), dtype=bool)]),
    )
    calibration = Calibration(
        feature_mean=(float(mean[0]), float(mean[1])),
        feature_std=(float(std[0]), float(std[1])),
        threshold=threshold,
        route_thresholds=tuple(route_thresholds),
        platt=platt,
        accept_rate=accept_rate,
        held_out=len(held_labels),
        source=source,
    )
    return model, calibration
