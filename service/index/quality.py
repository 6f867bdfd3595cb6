"""Expected answer quality of each model for a prompt, learned from outcome data.

One logistic model per model over three views of the prompt: the embedding (the vector the
router already computed), the standardised surface features of ``complexity`` (length,
lines, code and math density, sentences) and the prompt's words and word pairs, hashed into
``2 ** NGRAM_BITS`` buckets and weighted by tf-idf (the idf learned from the outcome
prompts). A score in [0, 1] is fitted as a fractional label (each row counts as a positive
with weight ``score`` and a negative with weight ``1 - score``), so 0/1 correctness, ratings
and judge grades all fit the same way. A model is learned from the rows that score it; a
model with fewer than ``MIN_ROWS`` rows gets no estimate at all. When the outcomes are of two
models that every row scores (RouteLLM's strong/weak setting), one multinomial model over
the four outcome patterns (both right, only the first, only the second, neither) replaces
the two: routing needs where the models differ, and the joint model learns that directly
(``fit_joint``); the estimates are still each model's chance of being right.

Why words as well as the embedding: a sentence embedding keeps what a prompt is about and
loses much of how it is put (the exact terms, a formula's symbols, "Statement 1 | Statement
2"), which is where one model's lead over another often lies. On RouteLLM's MMLU outcomes
(``scripts/evaluate_cost.py --cv 5``) the embedding alone reached an APGR of 0.671; with the
hashed n-grams, 0.696; modelled jointly, 0.701. Trained on half the subjects and tested on
the other half (four such splits, ``REGULARISATION_C`` below) the mean went from 0.569 to
0.578 with the n-grams, and from 0.571 to 0.574 (other halvings) jointly. A neighbour vote over
the outcome prompts (0.66 at k=100) was left out: it needs a search over every outcome
prompt per decision, while this is one small product plus a lookup of the prompt's few
hundred buckets (about 0.1 ms for an MMLU question). Neither was a regression on the gain
(strong minus weak) better (0.678), nor k-means clusters as extra features (0.680-0.689).
Outcome prompts carry no subject or route labels here, so the method works on any prompt.

Fitted at index build (``store.build_index``), saved as ``quality-<build id>.npz``, loaded
without scikit-learn. ``SCHEME`` enters the index fingerprint, so an index whose estimator
was fitted another way is rebuilt rather than misread.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from service.config.outcomes import OutcomeRow
from service.index.complexity import SURFACE_FEATURES, surface_features
from service.index.lexical import bucket_ids, sparse_rows

MIN_ROWS = 20
# Inverse L2 strength over the whole design, and the scale of the n-gram block against the
# embedding's (scaling a block by w regularises it like C * w**2). Chosen on MMLU by the
# mean APGR over four half-subject splits (`evaluate_cost.py --subject-split even` and
# `odd`, two random halvings), then by 5-fold APGR: C 0.1 / weight 2 -> 0.578 / 0.696;
# 0.3 / 1 -> 0.578 / 0.687; 0.1 / 1 -> 0.576 / 0.684; 0.3 / 2 -> 0.576 / 0.696; 0.05 / 3
# -> 0.573 / 0.698; 0.3 / 3 -> 0.568 / 0.695; 1 / 1 -> 0.573 / 0.686. The embedding alone
# at its best generalising C (0.03): 0.569 / 0.671. Heavier n-gram weights win in domain
# and lose across subjects.
REGULARISATION_C = 0.1
# The joint model of two models' outcomes (``PATTERNS``), chosen the same way (mean over
# four halvings / 5-fold APGR): C 0.1 -> 0.578 / 0.699, 0.15 -> 0.574 / 0.701, 0.2 -> 0.571 /
# 0.701, 0.3 -> 0.565 / 0.701, against the per-model models' 0.571 / 0.697 on the same
# halvings (subjects shuffled by numpy default_rng seeds 0 and 1, the first 28 trained on:
# not the halvings above, hence 0.571, not 0.578). 0.15 reaches APGR 0.70 without losing
# across subjects. `evaluate_cost.py --cv 5`: 0.701, CPT(80%) 53.8 % (1,500 rows: 0.642);
# `--subject-split even` / `odd`: 0.577 / 0.586 (per-model 0.590 / 0.576).
JOINT_C = 0.15
NGRAM_WEIGHT = 2.0
NGRAM_BITS = 18
WORD = re.compile(r"\w\w+")
# Words read per prompt: the first and the last half of this many, found in the first and
# last ``WINDOW`` characters. Hashing costs about a microsecond a word, so a long paste must
# not cost milliseconds; a question's instruction and its answer options sit at its ends.
MAX_WORDS = 256
WINDOW = 2048
# A joint model's classes: whether the first and the second model were right.
PATTERNS = ((1, 1), (1, 0), (0, 1), (0, 0))
SCHEME = (
    f"logistic C{REGULARISATION_C:g}, two models jointly C{JOINT_C:g}: embedding + surface + "
    f"word 1-2 grams (crc32, {NGRAM_BITS} bits, {MAX_WORDS} words, {WINDOW} chars, "
    f"weight {NGRAM_WEIGHT:g})"
)


def ngram_counts(text: str) -> dict[int, int]:
    """Bucket -> count of the prompt's lower-cased words and adjacent word pairs (of its
    first and last ``MAX_WORDS // 2`` words when it is longer, within ``WINDOW`` characters
    of either end)."""
    if len(text) > 2 * WINDOW:
        text = f"{text[:WINDOW]} {text[-WINDOW:]}"
    words = WORD.findall(text.lower())
    if len(words) > MAX_WORDS:
        words = words[: MAX_WORDS // 2] + words[-(MAX_WORDS // 2) :]
    return dict(
        Counter(bucket_ids(words + [f"{a} {b}" for a, b in pairwise(words)], 1 << NGRAM_BITS))
    )


def ngram_terms(text: str, idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The prompt's buckets and their L2-normalised sublinear tf-idf values."""
    counts = ngram_counts(text)
    buckets = np.fromiter(counts, dtype=np.int64, count=len(counts))
    values = np.fromiter((1.0 + math.log(c) for c in counts.values()), np.float32, len(counts))
    values *= idf[buckets]
    norm = float(np.linalg.norm(values))
    return buckets, values / norm if norm > 0 else values


@dataclass(frozen=True)
class QualityModel:
    """Logistic weights over [embedding, standardised surface features] and over the hashed
    n-gram buckets: one column per model, or, when ``joint``, one per outcome pattern of the
    two models (``PATTERNS``), whose softmax gives each model's chance of being right."""

    models: tuple[str, ...]
    weights: np.ndarray  # (dimension + SURFACE_FEATURES, columns)
    bias: np.ndarray  # (columns,)
    feature_mean: np.ndarray
    feature_std: np.ndarray
    idf: np.ndarray  # (2 ** NGRAM_BITS,)
    ngram_weights: np.ndarray  # (2 ** NGRAM_BITS, columns), NGRAM_WEIGHT folded in
    mean_score: np.ndarray  # (len(models),): mean observed score, for reports
    rows: np.ndarray  # (len(models),): rows that scored each model
    joint: bool = False

    @property
    def dimension(self) -> int:
        return int(self.weights.shape[0]) - SURFACE_FEATURES

    def expected(self, vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), len(models)) expected scores in [0, 1] of every model per prompt."""
        surface = standardised(surface_features(texts), self.feature_mean, self.feature_std)
        design = np.hstack([np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1), surface])
        logits = (design @ self.weights + self.bias).astype(np.float64)
        for i, text in enumerate(texts):
            buckets, values = ngram_terms(text, self.idf)
            logits[i] += values @ self.ngram_weights[buckets]
        if self.joint:
            logits -= logits.max(axis=1, keepdims=True)
            chance = np.exp(logits)
            chance /= chance.sum(axis=1, keepdims=True)
            # Each model's chance of being right: the sum over the patterns it is right in.
            return np.asarray(chance @ np.asarray(PATTERNS, dtype=np.float64))
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
            "idf": self.idf,
            "ngram_weights": self.ngram_weights,
            "mean_score": self.mean_score,
            "rows": self.rows,
            "joint": np.asarray(self.joint),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> QualityModel:
        """The model saved by ``to_arrays`` (``arrays``: that dict or an opened ``.npz``)."""
        models = tuple(str(model) for model in arrays["models"])
        joint = bool(arrays["joint"])
        columns = len(PATTERNS) if joint else len(models)
        if joint and len(models) != 2:
            raise ValueError(f"a joint model is of two models, not {len(models)}")
        weights = np.asarray(arrays["weights"], dtype=np.float32)
        if weights.ndim != 2 or weights.shape[1] != columns:
            raise ValueError(f"weights of shape {weights.shape} do not fit {columns} columns")
        idf = np.asarray(arrays["idf"], dtype=np.float32)
        ngram_weights = np.asarray(arrays["ngram_weights"], dtype=np.float32)
        buckets = 1 << NGRAM_BITS
        if idf.shape != (buckets,) or ngram_weights.shape != (buckets, columns):
            raise ValueError(
                f"n-gram arrays of shapes {idf.shape} and {ngram_weights.shape} do not fit "
                f"{buckets} buckets and {columns} columns"
            )
        return cls(
            models=models,
            weights=weights,
            bias=np.asarray(arrays["bias"], dtype=np.float32),
            feature_mean=np.asarray(arrays["feature_mean"], dtype=np.float32),
            feature_std=np.asarray(arrays["feature_std"], dtype=np.float32),
            idf=idf,
            ngram_weights=ngram_weights,
            mean_score=np.asarray(arrays["mean_score"], dtype=np.float64),
            rows=np.asarray(arrays["rows"], dtype=np.int64),
            joint=joint,
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


def ngram_design(texts: Sequence[str]) -> tuple[Any, np.ndarray]:
    """The texts' tf-idf rows (sparse, the same values ``ngram_terms`` gives one prompt)
    and the idf: smoothed, ``log((1 + n) / (1 + df)) + 1``, 0 for unseen buckets."""
    counts = [ngram_counts(text) for text in texts]
    buckets = 1 << NGRAM_BITS
    df = np.zeros(buckets, dtype=np.int64)
    for row in counts:
        df[np.fromiter(row, dtype=np.int64, count=len(row))] += 1
    idf = np.where(df > 0, np.log((1 + len(texts)) / (1 + df)) + 1, 0.0).astype(np.float32)
    terms = [ngram_terms(text, idf) for text in texts]
    return sparse_rows([ids for ids, _ in terms], [values for _, values in terms], buckets), idf


def fit(
    vectors: np.ndarray,
    texts: Sequence[str],
    scores: np.ndarray,
    models: Sequence[str],
    c: float = REGULARISATION_C,
) -> QualityModel | None:
    """Fit one logistic model per column of ``scores`` (NaN = not scored), or, for two
    models that every row scores, one joint model of their outcome patterns (``joint``).

    Models with fewer than MIN_ROWS scored rows are left out; None when none is left.
    """
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    surface = surface_features(texts)
    mean = surface.mean(axis=0) if len(texts) else np.zeros(SURFACE_FEATURES, np.float32)
    std = surface.std(axis=0) if len(texts) else np.ones(SURFACE_FEATURES, np.float32)
    std[std == 0] = 1.0
    dense = np.hstack([np.asarray(vectors, dtype=np.float32), standardised(surface, mean, std)])
    ngrams, idf = ngram_design(texts)
    design = sparse.hstack([sparse.csr_matrix(dense), NGRAM_WEIGHT * ngrams]).tocsr()
    width = dense.shape[1]
    joint = fit_joint(design, scores) if len(models) == 2 else None
    if joint is not None:
        coef, intercept = joint
        return QualityModel(
            models=tuple(models),
            weights=coef[:width],
            bias=intercept,
            feature_mean=mean.astype(np.float32),
            feature_std=std.astype(np.float32),
            idf=idf,
            ngram_weights=NGRAM_WEIGHT * coef[width:],
            mean_score=scores.mean(axis=0),
            rows=np.full(2, len(scores), dtype=np.int64),
            joint=True,
        )
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
        x = design[np.nonzero(observed)[0]]
        both = sparse.vstack([x, x]).tocsr()
        labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
        weight = np.concatenate([y, 1.0 - y])
        keep = np.nonzero(weight > 0)[0]
        classifier = LogisticRegression(C=c, max_iter=3000)
        classifier.fit(both[keep], labels[keep], sample_weight=weight[keep])
        columns.append(classifier.coef_[0].astype(np.float32))
        biases.append(float(classifier.intercept_[0]))
    if not kept:
        return None
    stacked = np.stack(columns, axis=1).astype(np.float32)
    return QualityModel(
        models=tuple(kept),
        weights=stacked[:width],
        bias=np.asarray(biases, dtype=np.float32),
        feature_mean=mean.astype(np.float32),
        feature_std=std.astype(np.float32),
        idf=idf,
        ngram_weights=NGRAM_WEIGHT * stacked[width:],
        mean_score=np.asarray(means),
        rows=np.asarray(counts, dtype=np.int64),
    )


def fit_joint(design: Any, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(weights (width, 4), biases (4,)) of a multinomial logistic model over the two models'
    outcome patterns, or None unless every row scores both, on at least MIN_ROWS rows, and
    every pattern occurs. A score counts towards the patterns as a probability (a row scored
    0.5 and 1 is half "both right", half "only the second").

    Why jointly: two models' outcomes on a prompt are correlated (a question hard for one is
    often hard for the other); a model of each alone spends its fit on predicting both right
    or both wrong, while routing only needs where they differ: P(only the first) - P(only
    the second), which is what the difference of the marginals is here.
    """
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    if len(scores) < MIN_ROWS or np.isnan(scores).any():
        return None
    first, second = scores[:, 0], scores[:, 1]
    weight = np.concatenate(
        [(first if a else 1.0 - first) * (second if b else 1.0 - second) for a, b in PATTERNS]
    )
    labels = np.repeat(np.arange(len(PATTERNS)), len(scores))
    if np.any(np.bincount(labels, weights=weight, minlength=len(PATTERNS)) <= 0):
        return None
    keep = np.nonzero(weight > 0)[0]
    rows = sparse.vstack([design] * len(PATTERNS)).tocsr()[keep]
    classifier = LogisticRegression(C=JOINT_C, max_iter=3000)
    classifier.fit(rows, labels[keep], sample_weight=weight[keep])
    return classifier.coef_.T.astype(np.float32), classifier.intercept_.astype(np.float32)


def fit_rows(
    rows: Sequence[OutcomeRow], vectors: np.ndarray, models: Sequence[str] | None = None
) -> QualityModel | None:
    """Fit on outcome rows whose prompts ``vectors`` embeds (row order); every scored model
    unless ``models`` narrows them."""
    if models is None:
        models = sorted({model for row in rows for model in row.outcomes})
    texts = [row.prompt for row in rows]
    return fit(vectors, texts, score_matrix(rows, models), models)
