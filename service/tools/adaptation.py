"""Contrastive adaptation of a frozen sentence encoder to the routes (SetFit-style), measured.

SetFit fine-tunes a sentence encoder on pairs of labelled examples (same label: cosine 1,
different labels: cosine 0) before fitting a classifier head. The encoders served here are
int8 ONNX graphs whose body cannot be fine-tuned on the service's 2 shared cores, so the
same objective trains a small map applied after the frozen encoder instead, fitted on the
routes' utterances alone (never on calibration rows or prompts to route):
``v -> normalise(v (I + dW))``, dW one d x d matrix, which serves as one NumPy product
(``Adapter.apply``). Pairs are drawn route by
route with equal chances, so a route of 8 utterances weighs as much as one of 300, and
``decay`` keeps the map near the identity (the encoder's own geometry is what transfers to
unseen sources). ``loss="supcon"`` uses a supervised contrastive loss over batches holding
every route instead of pairs.

Measured with ``scripts/evaluate.py --adapt-encoder`` on held-out sources (README, "Routing
quality on real prompts"): see there for the figures; the adapter is not part of the build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from service.config.routes import RouteSet
from service.index.store import wide_training_rows

Loss = Literal["cosine", "supcon"]


@dataclass(frozen=True)
class Adapter:
    """The fitted map as one matrix: ``apply`` is all serving would need."""

    matrix: np.ndarray  # (d, d): I + dW

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """The adapted, L2-normalised vectors of unit-norm encoder ``vectors`` (n, d)."""
        y = np.asarray(vectors, dtype=np.float32) @ self.matrix
        return np.asarray(y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12))


def _pairs(
    labels: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` positive then ``count`` negative pairs (row a, row b, target cosine), each
    route drawn with equal chance whatever its size."""
    order = np.argsort(labels, kind="stable")
    _, starts, sizes = np.unique(labels[order], return_index=True, return_counts=True)

    def member(route: np.ndarray) -> np.ndarray:
        """A uniform position inside each given route."""
        return (rng.random(len(route)) * sizes[route]).astype(np.int64)

    usable = np.flatnonzero(sizes >= 2)
    own = usable[rng.integers(len(usable), size=count)]
    first = member(own)
    # a different member of the same route: shift by 1..size-1
    second = (first + 1 + (rng.random(count) * (sizes[own] - 1)).astype(np.int64)) % sizes[own]
    r = rng.integers(len(sizes), size=count)
    s = (r + 1 + rng.integers(len(sizes) - 1, size=count)) % len(sizes)
    a = np.concatenate([starts[own] + first, starts[r] + member(r)])
    b = np.concatenate([starts[own] + second, starts[s] + member(s)])
    target = np.concatenate([np.ones(count), np.zeros(count)])
    return order[a], order[b], target


def _balanced_batch(labels: np.ndarray, per_route: int, rng: np.random.Generator) -> np.ndarray:
    """Row positions of ``per_route`` utterances of every route (with repeats for small ones)."""
    rows = []
    for route in np.unique(labels):
        own = np.flatnonzero(labels == route)
        rows.append(rng.choice(own, size=per_route, replace=len(own) < per_route))
    return np.concatenate(rows)


def fit_adapter(
    vectors: np.ndarray,
    labels: np.ndarray,
    *,
    loss: Loss = "cosine",
    steps: int = 300,
    pairs: int = 256,
    decay: float = 1e-3,
    temperature: float = 0.1,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> Adapter:
    """Fit the map on unit-norm ``vectors`` (n, d) of utterances labelled by route position.

    ``decay`` is an L2 penalty on dW, the departure from the identity. Torch is imported
    here only: fitting is an evaluation-time step. It runs on one thread: the products are
    small, and a second thread only waited on a shared 2-core machine (a fit took about 2
    minutes with two threads, 20-30 s with one).
    """
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
    d = x.shape[1]
    delta = torch.zeros(d, d, requires_grad=True)

    def forward(v: Any) -> Any:
        return v + v @ delta

    optimiser = torch.optim.Adam([delta], lr=learning_rate)
    per_route = max(2, pairs // max(1, len(np.unique(labels))))
    for _ in range(steps):
        if loss == "cosine":
            a, b, target = _pairs(labels, pairs // 2, rng)
            fa = torch.nn.functional.normalize(forward(x[a]), dim=1)
            fb = torch.nn.functional.normalize(forward(x[b]), dim=1)
            objective = ((fa * fb).sum(dim=1) - torch.from_numpy(target).float()).pow(2).mean()
        else:
            rows = _balanced_batch(labels, per_route, rng)
            objective = _supcon(forward(x[rows]), torch.from_numpy(labels[rows]), temperature)
        optimiser.zero_grad()
        (objective + decay * delta.pow(2).sum()).backward()
        optimiser.step()
    with torch.no_grad():
        return Adapter(matrix=(torch.eye(d) + delta).numpy().astype(np.float32))


def _supcon(embedded: Any, labels: Any, temperature: float) -> Any:
    """Supervised contrastive loss (Khosla et al. 2020): each row's same-route rows against
    every other row of the batch."""
    import torch

    z = torch.nn.functional.normalize(embedded, dim=1)
    logits = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool)
    logits = logits.masked_fill(eye, -1e9)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    log_probability = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    per_row = (log_probability * positive).sum(dim=1) / positive.sum(dim=1).clamp(min=1)
    return -per_row.mean()


class AdaptedEncoder:
    """An encoder whose vectors pass through an ``Adapter``: what the index and the router
    see in an evaluation with adaptation."""

    def __init__(self, encoder: Any, adapter: Adapter) -> None:
        self._encoder = encoder
        self.adapter = adapter
        self.model_id = f"{encoder.model_id}+adapter"
        self.dimension = encoder.dimension
        self.backend = getattr(encoder, "backend", None)
        self.graph = getattr(encoder, "graph", None)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> Any:
        return self.adapter.apply(self._encoder.encode(list(texts), batch_size, progress))

    def encode_one(self, text: str) -> np.ndarray:
        return np.asarray(self.encode([text])[0])

    def encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.encode(list(texts)))


def adapt_encoders(
    route_set: RouteSet,
    encoder: Any,
    wide_encoder: Any | None,
    *,
    wide: bool = True,
    **options: Any,
) -> tuple[AdaptedEncoder, Any | None]:
    """The encoders seen through adapters fitted on ``route_set``'s utterances (the wide one
    on the rows its classifier is fitted on, and only with ``wide``); ``options`` go to
    ``fit_adapter``."""
    texts = [utterance for route in route_set.routes for utterance in route.utterances]
    labels = np.array(
        [position for position, route in enumerate(route_set.routes) for _ in route.utterances]
    )
    adapted = AdaptedEncoder(encoder, fit_adapter(encoder.encode(texts), labels, **options))
    if wide_encoder is None or not wide:
        return adapted, wide_encoder
    wide_texts, wide_labels = wide_training_rows(route_set, texts, labels)
    vectors = wide_encoder.encode(wide_texts)
    return adapted, AdaptedEncoder(wide_encoder, fit_adapter(vectors, wide_labels, **options))
