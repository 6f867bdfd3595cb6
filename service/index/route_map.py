"""The route map: every utterance in two dimensions, and the route pairs most often confused.

Fitted at index build, where every vector is at hand, and stored with the index, so the
console draws the map without re-embedding anything and a typed prompt lands on it through
the same projection.

The projection is linear, so a new prompt is placed with one matrix product exactly where
its vector points, and the same index always gives the same picture. Its two axes are the
directions that best separate the routes (linear discriminant analysis, with the
within-route scatter shrunk towards the identity), not the two of largest variance (PCA):
in a sentence embedding those mostly follow topic, and on the default routes they kept 6 %
of the variance and left the routes in one blob. Two axes cannot separate nine routes
either, so distances on the map are a hint, not a measure; the map says how much of the
routes' separation its axes keep.

Overlap says which routes the index itself mixes up: for a sample of utterances (every one
on small route sets), the nearest *other* utterance; a pair's overlap is the share of its
sampled utterances whose nearest neighbour belongs to the other route of the pair. The
cosine similarity of the two routes' mean vectors is kept beside it and breaks ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Weight of the identity in the within-route scatter (discriminant axes). Measured on the
# default routes (scripts/evaluate_route_map.py): the route of held-out utterances by their
# 10 nearest neighbours on the map is right for 0.52 of them at 0.01, 0.57 at 0.1, 0.59-0.60
# from 0.2 to 0.8, 0.57 at 1 (the routes' centroids alone); 0.53 on principal axes. The high
# end of the plateau, because less whitening overfits less where routes have few utterances.
SHRINKAGE = 0.8
# Utterances whose nearest neighbour is looked up; above it, a per-route share of them.
NEIGHBOUR_SAMPLE = 3000
MIN_PER_ROUTE = 5
# Pairs stored with the index, the most confusable first.
KEPT_PAIRS = 20
# Similarity rows computed at once: bounds the memory of the neighbour search (~80 MB).
ROW_BUDGET = 20_000_000


@dataclass(frozen=True)
class RouteMap:
    method: str  # "discriminant" (three routes or more) or "principal"
    mean: np.ndarray  # (dimension,)
    components: np.ndarray  # (2, dimension): the map's axes, unit vectors
    # (2,): each axis's share of what the method maximises: the separation of the routes
    # ("discriminant") or the variance of the utterances ("principal")
    explained_variance: np.ndarray
    coords: np.ndarray  # (vectors, 2): every index vector, in the manifest's entry order
    pairs: np.ndarray  # (pairs, 2): route positions, the most confusable pair first
    overlap: np.ndarray  # (pairs,)
    centroid_similarity: np.ndarray  # (pairs,)

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Map coordinates (n, 2) of embedding rows, on the axes of the index's utterances."""
        return (np.asarray(vectors, dtype=np.float32) - self.mean) @ self.components.T

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "method": np.array(self.method),
            "mean": self.mean,
            "components": self.components,
            "explained_variance": self.explained_variance,
            "coords": self.coords,
            "pairs": self.pairs,
            "overlap": self.overlap,
            "centroid_similarity": self.centroid_similarity,
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> RouteMap:
        """The map saved by ``to_arrays`` (``arrays``: that dict or an opened ``.npz``)."""
        return cls(
            method=str(arrays["method"]),
            mean=np.asarray(arrays["mean"], dtype=np.float32),
            components=np.asarray(arrays["components"], dtype=np.float32),
            explained_variance=np.asarray(arrays["explained_variance"], dtype=np.float64),
            coords=np.asarray(arrays["coords"], dtype=np.float32),
            pairs=np.asarray(arrays["pairs"], dtype=np.int64).reshape(-1, 2),
            overlap=np.asarray(arrays["overlap"], dtype=np.float64),
            centroid_similarity=np.asarray(arrays["centroid_similarity"], dtype=np.float64),
        )


def principal_axes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, the two axes of largest variance (2, d), the share of the variance each keeps)."""
    rows = np.asarray(vectors, dtype=np.float64)
    mean = rows.mean(axis=0)
    covariance = rows.T @ rows / len(rows) - np.outer(mean, mean)
    values, axes = np.linalg.eigh(covariance)
    return mean, *_top_two(values, axes)


def discriminant_axes(
    vectors: np.ndarray, labels: np.ndarray, routes: int, shrinkage: float = SHRINKAGE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, the two axes that best separate the routes (2, d), each one's share of it).

    Linear discriminant analysis: the directions where routes lie far apart relative to
    how spread out each route is. The within-route scatter is shrunk towards a multiple of
    the identity, since a route has fewer utterances than the embedding has dimensions.
    """
    rows = np.asarray(vectors, dtype=np.float64)
    count, dimension = rows.shape
    mean = rows.mean(axis=0)
    sizes = np.bincount(labels, minlength=routes).astype(np.float64)
    sums = np.zeros((routes, dimension))
    np.add.at(sums, labels, rows)
    centroids = sums / np.maximum(sizes, 1)[:, None]
    within = (rows.T @ rows - (centroids * sizes[:, None]).T @ centroids) / count
    within = (1 - shrinkage) * within + shrinkage * np.trace(within) / dimension * np.eye(dimension)
    offsets = centroids - mean
    between = (offsets * sizes[:, None]).T @ offsets / count
    # The generalised problem between @ a = value * within @ a, made symmetric by whitening
    # with the Cholesky factor of the (shrunk, so positive definite) within-route scatter.
    whiten = np.linalg.inv(np.linalg.cholesky(within))
    values, axes = np.linalg.eigh(whiten @ between @ whiten.T)
    return mean, *_top_two(values, whiten.T @ axes)


def _top_two(values: np.ndarray, axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two axes of the largest eigenvalues (2, d) and their shares of the sum.

    Each axis is signed so that its largest coordinate is positive: a rebuild of the same
    routes draws the same picture, not its mirror image.
    """
    top = np.argsort(values)[::-1][:2]
    components = axes[:, top].T.copy()
    components /= np.maximum(np.linalg.norm(components, axis=1, keepdims=True), 1e-12)
    signs = np.sign(components[np.arange(len(top)), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    total = float(np.clip(values, 0, None).sum())
    shares = np.clip(values[top], 0, None) / total if total > 0 else np.zeros(len(top))
    if len(top) < 2:  # one-dimensional vectors: a flat second axis
        components = np.vstack([components, np.zeros_like(components)])
        shares = np.append(shares, 0.0)
    return components, shares


def neighbour_sample(labels: np.ndarray, routes: int, limit: int, seed: int = 0) -> np.ndarray:
    """Ids of up to about ``limit`` vectors, every route represented (all ids below the limit)."""
    if len(labels) <= limit:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    per_route = max(MIN_PER_ROUTE, limit // max(routes, 1))
    chosen = [
        rng.choice(ids, size=min(len(ids), per_route), replace=False)
        for ids in (np.flatnonzero(labels == route) for route in range(routes))
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.arange(0)


def nearest_other(vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """For each row id in ``ids``, the id of the most similar other row of ``vectors``."""
    rows = np.asarray(vectors, dtype=np.float32)
    found = np.empty(len(ids), dtype=np.int64)
    step = max(1, ROW_BUDGET // max(len(rows), 1))
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        similarities = rows[chunk] @ rows.T
        similarities[np.arange(len(chunk)), chunk] = -np.inf
        found[start : start + len(chunk)] = similarities.argmax(axis=1)
    return found


def confusable_pairs(
    vectors: np.ndarray, labels: np.ndarray, routes: int, keep: int = KEPT_PAIRS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pairs (p, 2), overlap (p,), centroid cosine (p,)), the most confusable pair first."""
    if routes < 2 or len(labels) < 2:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0), np.zeros(0)
    sample = neighbour_sample(labels, routes, NEIGHBOUR_SAMPLE)
    neighbours = nearest_other(vectors, sample)
    confused = np.zeros((routes, routes))
    np.add.at(confused, (labels[sample], labels[neighbours]), 1)
    sampled = np.bincount(labels[sample], minlength=routes)
    centroids = np.stack(
        [np.asarray(vectors)[labels == r].mean(axis=0) for r in range(routes)]
    ).astype(np.float64)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    cosine = centroids @ centroids.T
    first, second = np.triu_indices(routes, k=1)
    counted = sampled[first] + sampled[second]
    overlap = np.where(
        counted > 0,
        (confused[first, second] + confused[second, first]) / np.maximum(counted, 1),
        0.0,
    )
    similarity = cosine[first, second]
    order = np.lexsort((-similarity, -overlap))[:keep]
    pairs = np.stack([first[order], second[order]], axis=1).astype(np.int64)
    return pairs, overlap[order], similarity[order]


def fit(vectors: np.ndarray, labels: np.ndarray, routes: int) -> RouteMap:
    """The route map of an index: its vectors (unit rows) and each one's route position."""
    if routes >= 3:
        mean, components, shares = discriminant_axes(vectors, labels, routes)
        method = "discriminant"
    else:  # two routes have one discriminant direction: show the spread instead
        mean, components, shares = principal_axes(vectors)
        method = "principal"
    pairs, overlap, similarity = confusable_pairs(vectors, labels, routes)
    coords = (np.asarray(vectors, dtype=np.float64) - mean) @ components.T
    return RouteMap(
        method=method,
        mean=mean.astype(np.float32),
        components=components.astype(np.float32),
        explained_variance=shares,
        coords=coords.astype(np.float32),
        pairs=pairs,
        overlap=overlap,
        centroid_similarity=similarity,
    )


def shown_points(labels: np.ndarray, routes: int, limit: int) -> np.ndarray:
    """Ids of about ``limit`` vectors to draw: all of them, or an even share of each route.

    Evenly spaced within each route rather than random, so every refresh shows the same
    points; each route keeps at least a few, however small beside the others.
    """
    if len(labels) <= limit:
        return np.arange(len(labels))
    share = limit / len(labels)
    chosen = []
    for route in range(routes):
        ids = np.flatnonzero(labels == route)
        take = min(len(ids), max(MIN_PER_ROUTE, int(len(ids) * share)))
        if take:
            chosen.append(ids[np.linspace(0, len(ids) - 1, take).round().astype(np.int64)])
    return np.unique(np.concatenate(chosen)) if chosen else np.arange(0)
