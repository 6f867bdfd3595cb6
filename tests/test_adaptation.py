"""The contrastive encoder adapter: balanced pairs, and a map that pulls a route's vectors together."""

import numpy as np

from service.tools.adaptation import AdaptedEncoder, Adapter, _pairs, fit_adapter


def _routes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three routes in 16 dimensions: a shared topic direction dominates, each route's own
    direction is weak, and the middle route has only 6 rows beside 60."""
    rng = np.random.default_rng(seed)
    own = np.eye(16)[:3] * 0.6
    labels = np.repeat([0, 1, 2], [60, 6, 60])
    vectors = own[labels] + rng.normal(size=(len(labels), 16)) * 0.5 + np.eye(16)[3]
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels


def _separation(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine of same-route pairs minus that of different-route pairs."""
    similarity = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return float(similarity[same & off_diagonal].mean() - similarity[~same].mean())


def test_pairs_are_drawn_route_by_route_whatever_the_routes_size() -> None:
    labels = np.repeat([0, 1, 2], [3, 300, 8])
    first, second, target = _pairs(labels, 3000, np.random.default_rng(0))
    positive, negative = target == 1, target == 0
    assert (labels[first[positive]] == labels[second[positive]]).all()
    assert (first[positive] != second[positive]).all()
    assert (labels[first[negative]] != labels[second[negative]]).all()
    shares = np.bincount(labels[first[positive]]) / positive.sum()
    assert np.allclose(shares, 1 / 3, atol=0.05)


def test_the_adapter_pulls_same_route_vectors_together() -> None:
    vectors, labels = _routes()
    adapter = fit_adapter(vectors, labels, steps=150, pairs=96, learning_rate=1e-2)
    test_vectors, test_labels = _routes(seed=1)  # unseen rows of the same routes
    before = _separation(test_vectors, test_labels)
    after = _separation(adapter.apply(test_vectors), test_labels)
    assert after > 2 * before
    # the route of 6 rows is pulled apart from a route of 60 too, not drowned by it
    pair = test_labels < 2
    adapted = adapter.apply(test_vectors[pair])
    assert _separation(adapted, test_labels[pair]) > _separation(
        test_vectors[pair], test_labels[pair]
    )


def test_an_untrained_adapter_is_the_identity_and_outputs_unit_vectors() -> None:
    vectors, labels = _routes()
    untrained = fit_adapter(vectors, labels, steps=0)
    assert np.allclose(untrained.apply(vectors), vectors, atol=1e-5)
    scaled = Adapter(matrix=np.eye(16, dtype=np.float32) * 3.0)
    assert np.allclose(np.linalg.norm(scaled.apply(vectors), axis=1), 1.0, atol=1e-5)


def test_the_adapted_encoder_applies_the_map_after_the_encoder() -> None:
    vectors, _ = _routes()

    class Table:
        model_id, dimension = "table", 16

        def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False):
            return vectors[[int(text) for text in texts]]

    adapter = Adapter(matrix=np.diag(np.arange(1, 17, dtype=np.float32)))
    encoder = AdaptedEncoder(Table(), adapter)
    assert encoder.model_id != "table"
    assert np.allclose(encoder.encode_one("4"), adapter.apply(vectors[[4]])[0])
