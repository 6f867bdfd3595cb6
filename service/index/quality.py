"""Expected answer quality of each model for a prompt, learned from outcome data.

One logistic model per model over the prompt embedding (the vector the router already
computed) plus the standardised surface features of ``complexity`` (length, lines, code and
math density, sentences). A score in [0, 1] is fitted as a fractional label (each row counts
as a positive with weight ``score`` and a negative with weight ``1 - score``), so 0/1
correctness, ratings and judge grades all fit the same way. A model is learned from the
rows that score it; a model with fewer than ``MIN_ROWS`` rows gets no estimate at all.

Why this and not neighbours: on RouteLLM's MMLU outcomes (5-fold cross-validation,
``scripts/evaluate_cost.py``) a neighbour vote over the outcome prompts reached an APGR of
0.66 at k=100 and a per-model logistic model 0.67, and blending the two added about 0.005;
the neighbour vote, however, needs a search over every outcome prompt per decision (14k
rows: milliseconds), while this is one (d + 5) x models product (microseconds). Outcome
prompts carry no subject or route labels here, so the method works on any prompt.

Fitted at index build (``store.build_index``), saved as ``quality-<build id>.npz``, loaded
without scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.config.outcomes import OutcomeRow
from service.index.complexity import SURFACE_FEATURES, surface_features

MIN_ROWS = 20
# Inverse L2 strength. On MMLU, 5-fold cross-validated, 0.1 scored best (APGR 0.674; 0.03:
# 0.671, 0.3: 0.669, 1: 0.655); trained on half the subjects and tested on the other half,
# 0.03 did (0.606; 0.1: 0.583, 0.01: 0.599). Prompts unlike the training ones are the
# common case, so the setting that generalises wins over the in-domain best.
REGULARISATION_C = 0.03


@dataclass(frozen=True)
class QualityModel:
    """Per-model logistic weights over [embedding, standardised surface features]."""

    models: tuple[str, ...]
    weights: np.ndarray  # (dimension + SURFACE_FEATURES, len(models))
    bias: np.ndarray  # (len(models),)
    feature_mean: np.ndarray
    feature_std: np.ndarray
    mean_score: np.ndarray  # (len(models),): mean observed score, for reports
    rows: np.ndarray  # (len(models),): rows that scored each model

    @property
    def dimension(self) -> int:
        return int(self.weights.shape[0]) - SURFACE_FEATURES

    def expected(self, vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), len(models)) expected scores in [0, 1] of every model per prompt."""
        surface = standardised(surface_features(texts), self.feature_mean, self.feature_std)
        design = np.hstack([np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1), surface])
        logits = (design @ self.weights + self.bias).astype(np.float64)
        return np.asarray(0.5 * (1.0 + np.tanh(logits / 2)))  # the sigmoid, without overflow

    def expected_one(self, vector: np.ndarray, text: str) -> dict[str, float]:
        """Model -> expected score for one prompt."""
        row = self.expected(vector[None, :], [text])[0]
        return {model: float(score) for model, score in zip(self.models, row, strict=True)}

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "models": np.asarray(self.models, dtype=np.str_),
            "weights": self.weights,
            "bias": self.bias,
            "feature_mean": self.feature_mean,
            "feature_std": self.feature_std,
            "mean_score": self.mean_score,
            "rows": self.rows,
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> QualityModel:
        """The model saved by ``to_arrays`` (``arrays``: that dict or an opened ``.npz``)."""
        models = tuple(str(model) for model in arrays["models"])
        weights = np.asarray(arrays["weights"], dtype=np.float32)
        if weights.ndim != 2 or weights.shape[1] != len(models):
            raise ValueError(f"weights of shape {weights.shape} do not fit {len(models)} models")
        return cls(
            models=models,
            weights=weights,
            bias=np.asarray(arrays["bias"], dtype=np.float32),
            feature_mean=np.asarray(arrays["feature_mean"], dtype=np.float32),
            feature_std=np.asarray(arrays["feature_std"], dtype=np.float32),
            mean_score=np.asarray(arrays["mean_score"], dtype=np.float64),
            rows=np.asarray(arrays["rows"], dtype=np.int64),
        )


def standardised(surface: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Surface features in standard deviations from the training mean, clipped to +-5: a
    prompt far outside the training range (a 100k-character paste) must not swamp the
    embedding's evidence."""
    return np.clip((surface - mean) / std, -5.0, 5.0)


def score_matrix(rows: Sequence[OutcomeRow], models: Sequence[str]) -> np.ndarray:
    """(len(rows), len(models)) scores, NaN where a row does not score a model."""
    matrix = np.full((len(rows), len(models)), np.nan)
    position = {model: j for j, model in enumerate(models)}
    for i, row in enumerate(rows):
        for model, score in row.outcomes.items():
            if model in position:
                matrix[i, position[model]] = score
    return matrix


def fit(
    vectors: np.ndarray,
    texts: Sequence[str],
    scores: np.ndarray,
    models: Sequence[str],
    c: float = REGULARISATION_C,
) -> QualityModel | None:
    """Fit one logistic model per column of ``scores`` (NaN = not scored).

    Models with fewer than MIN_ROWS scored rows are left out; None when none is left.
    """
    from sklearn.linear_model import LogisticRegression

    surface = surface_features(texts)
    mean = surface.mean(axis=0) if len(texts) else np.zeros(SURFACE_FEATURES, np.float32)
    std = surface.std(axis=0) if len(texts) else np.ones(SURFACE_FEATURES, np.float32)
    std[std == 0] = 1.0
    design = np.hstack([np.asarray(vectors, dtype=np.float32), standardised(surface, mean, std)])
    kept: list[str] = []
    columns: list[np.ndarray] = []
    biases: list[float] = []
    means: list[float] = []
    counts: list[int] = []
    for j, model in enumerate(models):
        observed = ~np.isnan(scores[:, j])
        y = scores[observed, j]
        if len(y) < MIN_ROWS:
            continue
        kept.append(model)
        means.append(float(y.mean()))
        counts.append(len(y))
        if np.all(y == y[0]) and y[0] in (0.0, 1.0):
            # One class only: logistic regression cannot fit it; the estimate is constant.
            columns.append(np.zeros(design.shape[1], dtype=np.float32))
            biases.append(float(np.log((y[0] + 1e-3) / (1 - y[0] + 1e-3))))
            continue
        x = design[observed]
        both = np.vstack([x, x])
        labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
        weight = np.concatenate([y, 1.0 - y])
        keep = weight > 0
        classifier = LogisticRegression(C=c, max_iter=3000)
        classifier.fit(both[keep], labels[keep], sample_weight=weight[keep])
        columns.append(classifier.coef_[0].astype(np.float32))
        biases.append(float(classifier.intercept_[0]))
    if not kept:
        return None
    return QualityModel(
        models=tuple(kept),
        weights=np.stack(columns, axis=1).astype(np.float32),
        bias=np.asarray(biases, dtype=np.float32),
        feature_mean=mean.astype(np.float32),
        feature_std=std.astype(np.float32),
        mean_score=np.asarray(means),
        rows=np.asarray(counts, dtype=np.int64),
    )


def fit_rows(
    rows: Sequence[OutcomeRow], vectors: np.ndarray, models: Sequence[str] | None = None
) -> QualityModel | None:
    """Fit on outcome rows whose prompts ``vectors`` embeds (row order); every scored model
    unless ``models`` narrows them."""
    if models is None:
        models = sorted({model for row in rows for model in row.outcomes})
    texts = [row.prompt for row in rows]
    return fit(vectors, texts, score_matrix(rows, models), models)
