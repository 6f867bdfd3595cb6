"""Pure scoring: neighbours -> per-route scores -> ranking -> accept or abstain."""

import numpy as np
import pytest

from service.routing.scoring import (
    Abstain,
    Ranked,
    blend,
    neighbour_probabilities,
    neighbour_route_scores,
    rank,
    verdict,
)


def _ranked(*scores: float) -> Ranked:
    return Ranked(positions=np.arange(len(scores)), scores=np.array(scores, dtype=np.float64))


# -- neighbour_route_scores -------------------------------------------------------------------


def test_route_score_is_the_mean_of_its_top_m_neighbours() -> None:
    similarities = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([0, 0, 1, 0, 0, 1])

    scores = neighbour_route_scores(similarities, labels, n_routes=2, top_m=3)

    assert scores[0] == pytest.approx((0.9 + 0.8 + 0.6) / 3)
    assert scores[1] == pytest.approx((0.7 + 0.4) / 2)


def test_route_seen_once_scores_its_single_neighbour() -> None:
    scores = neighbour_route_scores(np.array([0.9, 0.3]), np.array([1, 0]), n_routes=2, top_m=3)

    assert scores.tolist() == pytest.approx([0.3, 0.9])


def test_top_m_of_one_scores_each_route_by_its_nearest_neighbour() -> None:
    similarities = np.array([0.9, 0.5, 0.4, 0.1])
    labels = np.array([0, 1, 0, 1])

    scores = neighbour_route_scores(similarities, labels, n_routes=2, top_m=1)

    assert scores.tolist() == pytest.approx([0.9, 0.5])


def test_routes_absent_from_the_neighbours_score_nan_not_zero() -> None:
    scores = neighbour_route_scores(np.array([0.6, 0.5]), np.array([2, 2]), n_routes=4)

    assert np.isnan(scores[[0, 1, 3]]).all()
    assert scores[2] == pytest.approx(0.55)


def test_empty_neighbour_slots_labelled_minus_one_are_ignored() -> None:
    similarities = np.array([0.8, -3.4e38, -3.4e38])
    labels = np.array([1, -1, -1])

    scores = neighbour_route_scores(similarities, labels, n_routes=2)

    assert np.isnan(scores[0])
    assert scores[1] == pytest.approx(0.8)


def test_negative_similarities_are_averaged_like_any_other() -> None:
    scores = neighbour_route_scores(np.array([-0.1, -0.3]), np.array([0, 0]), n_routes=1)

    assert scores[0] == pytest.approx(-0.2)


# -- rank -------------------------------------------------------------------------------------


def test_rank_orders_routes_best_first_and_drops_routes_without_evidence() -> None:
    ranked = rank(np.array([0.2, np.nan, 0.7, 0.5]))

    assert ranked.positions.tolist() == [2, 3, 0]
    assert ranked.scores.tolist() == pytest.approx([0.7, 0.5, 0.2])


def test_rank_keeps_route_order_on_ties() -> None:
    ranked = rank(np.array([0.4, 0.6, 0.6, 0.4]))

    assert ranked.positions.tolist() == [1, 2, 0, 3]


def test_rank_of_no_evidence_is_empty() -> None:
    ranked = rank(np.array([np.nan, np.nan]))

    assert len(ranked.positions) == 0
    assert len(ranked.scores) == 0


# -- Ranked.margin ----------------------------------------------------------------------------


def test_margin_is_the_gap_between_best_and_runner_up() -> None:
    assert _ranked(0.75, 0.5, 0.25).margin == pytest.approx(0.25)


def test_margin_of_a_single_candidate_is_its_gap_to_minus_one() -> None:
    assert _ranked(0.5).margin == pytest.approx(1.5)


def test_margin_without_candidates_is_zero() -> None:
    assert _ranked().margin == 0.0


# -- verdict ----------------------------------------------------------------------------------


def test_no_candidate_abstains() -> None:
    assert verdict(_ranked(), threshold=0.0, min_margin=0.0) is Abstain.NO_CANDIDATE


def test_top_score_below_threshold_abstains() -> None:
    assert verdict(_ranked(0.39, 0.1), threshold=0.4, min_margin=0.0) is Abstain.BELOW_THRESHOLD


def test_threshold_is_checked_before_margin() -> None:
    assert verdict(_ranked(0.3, 0.3), threshold=0.4, min_margin=0.1) is Abstain.BELOW_THRESHOLD


def test_close_runner_up_abstains() -> None:
    assert verdict(_ranked(0.6, 0.55), threshold=0.4, min_margin=0.1) is Abstain.CLOSE_MARGIN


def test_clear_top_route_is_accepted() -> None:
    assert verdict(_ranked(0.6, 0.3), threshold=0.4, min_margin=0.1) is None


def test_score_equal_to_threshold_is_accepted() -> None:
    assert verdict(_ranked(0.5, 0.0), threshold=0.5, min_margin=0.0) is None


def test_zero_min_margin_accepts_an_exact_tie() -> None:
    assert verdict(_ranked(0.6, 0.6), threshold=0.4, min_margin=0.0) is None


def test_abstain_reasons_serialise_as_plain_strings() -> None:
    assert [reason.value for reason in Abstain] == [
        "no_candidate",
        "below_threshold",
        "close_margin",
        "out_of_scope",
    ]


# -- neighbour_probabilities and blend --------------------------------------------------------


def test_neighbour_probabilities_favour_the_closest_route_and_skip_routes_without_evidence() -> (
    None
):
    probabilities = neighbour_probabilities(np.array([0.80, np.nan, 0.70]), temperature=0.05)

    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities[1] == 0.0
    assert probabilities[0] > 0.8 > probabilities[2] > 0.0


def test_no_neighbour_at_all_gives_no_probability() -> None:
    assert neighbour_probabilities(np.array([np.nan, np.nan]), 0.05).tolist() == [0.0, 0.0]


def test_blend_lets_a_clear_neighbour_vote_overturn_a_diffident_classifier() -> None:
    classifier = np.array([0.45, 0.40, 0.15])
    neighbours = np.array([0.0, 0.0, 1.0])

    assert rank(blend(classifier, neighbours, weight=0.1)).positions[0] == 0
    assert rank(blend(classifier, neighbours, weight=0.5)).positions[0] == 2
    assert blend(classifier, neighbours, weight=0.0).tolist() == classifier.tolist()
