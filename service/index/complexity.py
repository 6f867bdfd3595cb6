"""Prompt complexity: the probability that a prompt is hard, and the tier that suits it.

A logistic regression over the prompt embedding plus a few surface features (length in
approximate tokens, line count, code-symbol and math-symbol density, sentence count),
trained from ``routes/complexity.jsonl`` (``{"text", "label": "easy" | "hard"}``).

It is fitted when the index is built (``service/index/store.py``) and stored beside it as
``complexity-<build id>.npz``; the examples are part of the index fingerprint, so editing
them makes the index stale. The serving process only loads the weights: fitting uses
scikit-learn (slow to import, heavy in memory), applying is one dot product in NumPy. The
router applies it only when some route lists tiered ``models``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from service.config.complexity_examples import read_labelled
from service.config.rules import approximate_tokens
from service.config.tiers import Tier

# p(hard) below ECONOMY_BELOW suggests the economy tier, above BEST_ABOVE the best one.
ECONOMY_BELOW = 0.35
BEST_ABOVE = 0.65
CODE_CHARS = set("{}()[];=<>_`#\\|&")
MATH_CHARS = set("0123456789+-*/^=∫∑√π≤≥≠∞∂")
SENTENCE_END = re.compile(r"[.?!](\s|$)")
SURFACE_FEATURES = 5


class Embeds(Protocol):
    def encode(
        self, texts: list[str], batch_size: int = ..., progress: bool = ...
    ) -> np.ndarray: ...


def surface_features(texts: Sequence[str]) -> np.ndarray:
    """(n, 5): log tokens, log lines, code density, math density, log sentences."""
    rows = []
    for text in texts:
        length = max(len(text), 1)
        rows.append(
            [
                math.log1p(approximate_tokens(text)),
                math.log1p(text.count("\n")),
                sum(ch in CODE_CHARS for ch in text) / length,
                sum(ch in MATH_CHARS for ch in text) / length,
                math.log1p(len(SENTENCE_END.findall(text))),
            ]
        )
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), SURFACE_FEATURES)


@dataclass(frozen=True)
class ComplexityModel:
    """Weights over [embedding, standardised surface features]."""

    weights: np.ndarray
    bias: float
    feature_mean: np.ndarray
    feature_std: np.ndarray

    def _design(self, vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        surface = (surface_features(texts) - self.feature_mean) / self.feature_std
        return np.hstack([np.asarray(vectors, dtype=np.float32), surface])

    def hard_probability(self, vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        logits = self._design(vectors, texts) @ self.weights + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "weights": self.weights,
            "bias": np.asarray(self.bias, dtype=np.float64),
            "feature_mean": self.feature_mean,
            "feature_std": self.feature_std,
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> ComplexityModel:
        """The model saved by ``to_arrays`` (``arrays``: that dict or an opened ``.npz``)."""
        return cls(
            weights=np.asarray(arrays["weights"], dtype=np.float32),
            bias=float(arrays["bias"]),
            feature_mean=np.asarray(arrays["feature_mean"], dtype=np.float32),
            feature_std=np.asarray(arrays["feature_std"], dtype=np.float32),
        )


def tier_for(hard_probability: float) -> Tier:
    if hard_probability < ECONOMY_BELOW:
        return "economy"
    if hard_probability > BEST_ABOVE:
        return "best"
    return "balanced"


def fit(vectors: np.ndarray, texts: Sequence[str], labels: Sequence[int]) -> ComplexityModel:
    from sklearn.linear_model import LogisticRegression

    surface = surface_features(texts)
    mean = surface.mean(axis=0)
    std = surface.std(axis=0)
    std[std == 0] = 1.0
    design = np.hstack([np.asarray(vectors, dtype=np.float32), (surface - mean) / std])
    classifier = LogisticRegression(C=1.0, max_iter=2000)
    classifier.fit(design, np.asarray(labels))
    return ComplexityModel(
        weights=classifier.coef_[0].astype(np.float32),
        bias=float(classifier.intercept_[0]),
        feature_mean=mean,
        feature_std=std,
    )


def fit_examples(
    examples: Sequence[tuple[str, int]], encoder: Embeds, batch_size: int = 64
) -> ComplexityModel:
    """Embed ``(text, label)`` pairs with ``encoder`` and fit the model on them."""
    texts = [text for text, _ in examples]
    vectors = encoder.encode(texts, batch_size=batch_size)
    return fit(vectors, texts, [label for _, label in examples])


def train_from_file(path: Path, encoder: Embeds) -> ComplexityModel:
    texts, labels = read_labelled(path)
    return fit_examples(list(zip(texts, labels, strict=True)), encoder)
