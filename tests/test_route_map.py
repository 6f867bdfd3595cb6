"""The route map's pure maths on hand-made vectors: axes, confusable pairs, sampling."""

from __future__ import annotations

import numpy as np
import pytest

from service.index import route_map
from service.index.route_map import RouteMap


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three routes told apart along dimension 0 only, with much wider noise along 1 and 2."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], 40)
    rows = np.zeros((len(labels), 6))
    rows[:, 0] = labels * 0.3 + rng.normal(0, 0.02, len(labels))
    rows[:, 1] = rng.normal(0, 1.0, len(labels))
    rows[:, 2] = rng.normal(0, 0.8, len(labels))
    rows[:, 3:] = rng.normal(0, 0.01, (len(labels), 3))
    return rows, labels


def test_principal_axes_follow_the_largest_variance() -> None:
    rows, _ = clusters()
    mean, components, shares = route_map.principal_axes(rows)

    np.testing.assert_allclose(mean, rows.mean(axis=0))
    assert abs(components[0, 1]) > 0.95  # the widest noise
    assert abs(components[1, 2]) > 0.95
    assert shares[0] > shares[1] > 0
    assert shares.sum() <= 1


def test_discriminant_axes_find_the_direction_that_separates_routes() -> None:
    rows, labels = clusters()
    _, components, shares = route_map.discriminant_axes(rows, labels, 3)

    assert abs(components[0, 0]) > 0.9  # not the wide noise PCA picks
    np.testing.assert_allclose(np.linalg.norm(components, axis=1), 1.0, rtol=1e-6)
    assert shares[0] > 3 * shares[1]  # the routes lie along one line


def test_axes_are_signed_so_a_rebuild_draws_the_same_picture() -> None:
    rows, labels = clusters()
    first = route_map.fit(rows, labels, 3)
    again = route_map.fit(rows[::-1].copy(), labels[::-1].copy(), 3)

    np.testing.assert_allclose(first.components, again.components, atol=1e-6)
    for axis in first.components:
        assert axis[np.abs(axis).argmax()] > 0


def test_fit_places_every_vector_where_project_puts_it() -> None:
    rows, labels = clusters()
    fitted = route_map.fit(unit(rows), labels, 3)

    assert fitted.method == "discriminant"
    assert fitted.coords.shape == (120, 2)
    np.testing.assert_allclose(fitted.project(unit(rows)), fitted.coords, atol=1e-5)


def test_two_routes_get_principal_axes_since_they_have_one_discriminant() -> None:
    rows, labels = clusters()
    keep = labels < 2
    fitted = route_map.fit(rows[keep], labels[keep], 2)

    assert fitted.method == "principal"
    assert fitted.components.shape == (2, 6)


def test_overlapping_routes_are_the_most_confusable_pair() -> None:
    rng = np.random.default_rng(1)
    centre_a, centre_c = np.eye(8)[0], np.eye(8)[5]
    a = unit(centre_a + rng.normal(0, 0.3, (30, 8)))
    b = unit(centre_a + rng.normal(0, 0.3, (30, 8)))  # drawn around the same centre as a
    c = unit(centre_c + rng.normal(0, 0.05, (30, 8)))
    labels = np.repeat([0, 1, 2], 30)

    pairs, overlap, similarity = route_map.confusable_pairs(np.vstack([a, b, c]), labels, 3)

    assert pairs.tolist()[0] == [0, 1]
    assert overlap[0] > 0.3
    assert overlap[1:].tolist() == [0.0, 0.0]  # nothing near c
    assert similarity[0] > 0.9
    assert list(overlap) == sorted(overlap, reverse=True)


def test_a_single_route_has_no_pairs() -> None:
    pairs, overlap, similarity = route_map.confusable_pairs(unit(np.eye(4)), np.zeros(4, int), 1)
    assert pairs.shape == (0, 2) and len(overlap) == len(similarity) == 0


def test_nearest_other_never_answers_the_row_itself() -> None:
    rows = unit(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]))
    assert route_map.nearest_other(rows, np.arange(3)).tolist() == [1, 0, 1]


def test_the_neighbour_sample_keeps_every_route_above_the_limit() -> None:
    labels = np.concatenate([np.zeros(5000, int), np.ones(7, int)])
    ids = route_map.neighbour_sample(labels, 2, limit=100)

    assert set(labels[ids]) == {0, 1}
    assert (labels[ids] == 1).sum() == 7
    assert len(ids) == len(set(ids.tolist())) <= 107


@pytest.mark.parametrize("limit", [10, 50, 10_000])
def test_shown_points_are_all_or_an_even_share_of_every_route(limit: int) -> None:
    labels = np.concatenate([np.zeros(400, int), np.ones(3, int), np.full(100, 2)])
    ids = route_map.shown_points(labels, 3, limit)

    if limit >= len(labels):
        assert ids.tolist() == list(range(len(labels)))
    else:
        assert set(labels[ids]) == {0, 1, 2}
        assert len(ids) <= limit + 3 * route_map.MIN_PER_ROUTE
        assert (labels[ids] == 0).sum() >= (labels[ids] == 2).sum()
    assert ids.tolist() == route_map.shown_points(labels, 3, limit).tolist()


def test_a_route_map_survives_its_arrays() -> None:
    rows, labels = clusters()
    fitted = route_map.fit(unit(rows), labels, 3)
    back = RouteMap.from_arrays(fitted.to_arrays())

    assert back.method == fitted.method
    for name, value in fitted.to_arrays().items():
        np.testing.assert_array_equal(back.to_arrays()[name], value)
