"""The linear route classifier and its calibration, on synthetic clusters (no encoder).

Four routes are four tight clusters around the first four axes of a 16-d space, L2-normalised
like real embeddings; "out of scope" is a point in the other eight dimensions, far from every
cluster.
"""

import io
import json
from dataclasses import replace

import numpy as np
import pytest

from service.index import classifier
from service.index.classifier import (
    Calibration,
    LinearModel,
    decision_confidence,
    fit,
    fit_linear,
    softmax,
)

DIM = 16
ROUTES = 4


def clusters(
    seed: int, per_route: int, spreads: tuple[float, ...] = (0.15,) * ROUTES
) -> tuple[np.ndarray, np.ndarray]:
    """``per_route`` unit vectors around axis k for route k, with noise ``spreads[k]``."""
    rng = np.random.default_rng(seed)
    vectors, labels = [], []
    for route, spread in enumerate(spreads):
        centre = np.zeros(DIM)
        centre[route] = 1.0
        vectors.append(centre + rng.normal(0.0, spread, (per_route, DIM)))
        labels += [route] * per_route
    return unit(np.vstack(vectors)), np.array(labels, dtype=np.int64)


def far_points(seed: int, count: int) -> np.ndarray:
    """Unit vectors in the dimensions no route uses: out of scope."""
    rng = np.random.default_rng(seed)
    vectors = np.zeros((count, DIM))
    vectors[:, 8:] = rng.normal(0.0, 1.0, (count, 8))
    return unit(vectors)


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def train() -> tuple[np.ndarray, np.ndarray]:
    return clusters(seed=0, per_route=30)


@pytest.fixture(scope="module")
def calibrated(
    train: tuple[np.ndarray, np.ndarray],
) -> tuple[LinearModel, Calibration]:
    """Fitted with held-out prompts: 10 in scope per route plus 10 out of scope."""
    vectors, labels = train
    held_x, held_y = clusters(seed=1, per_route=10)
    held_labels: list[int | None] = [int(label) for label in held_y] + [None] * 10
    return fit(
        vectors,
        labels,
        ROUTES,
        np.vstack([held_x, far_points(seed=2, count=10)]),
        held_labels,
        accept_rate=0.9,
    )


def in_scope_scores(model: LinearModel, calibration: Calibration, x: np.ndarray) -> np.ndarray:
    _, features = model.raw_scores(x)
    return calibration.in_scope(features)


# -- fit_linear -------------------------------------------------------------------------------


def test_linear_model_predicts_the_cluster_of_unseen_points(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    model = fit_linear(*train, n_routes=ROUTES, c=10.0)
    test_x, test_y = clusters(seed=5, per_route=20)

    logits, _ = model.raw_scores(test_x)

    assert (logits.argmax(axis=1) == test_y).mean() >= 0.98


def test_route_absent_from_the_training_labels_never_wins(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    vectors, labels = train
    keep = labels != 2
    model = fit_linear(vectors[keep], labels[keep], n_routes=ROUTES, c=10.0)
    test_x, _ = clusters(seed=5, per_route=20)  # route 2's own points included

    logits, features = model.raw_scores(test_x)

    assert logits.shape == (len(test_x), ROUTES)
    assert not (logits.argmax(axis=1) == 2).any()
    # Nor does its (absent) centroid count as the nearest one.
    _, with_route_2 = fit_linear(vectors, labels, ROUTES, 10.0).raw_scores(test_x)
    assert (features[:, 1] <= with_route_2[:, 1] + 1e-6).all()


def test_two_routes_present_are_told_apart_and_the_others_never_win(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    vectors, labels = train
    keep = (labels == 0) | (labels == 2)
    model = fit_linear(vectors[keep], labels[keep], n_routes=ROUTES, c=10.0)

    logits, _ = model.raw_scores(vectors[keep])

    assert (logits.argmax(axis=1) == labels[keep]).all()


def test_single_route_always_wins(train: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, labels = train
    only = labels == 1
    model = fit_linear(vectors[only], labels[only], n_routes=3, c=10.0)

    logits, _ = model.raw_scores(np.vstack([vectors, far_points(seed=3, count=5)]))

    assert (logits.argmax(axis=1) == 1).all()


def test_raw_scores_give_logits_per_route_and_two_in_scope_features(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    model = fit_linear(*train, n_routes=ROUTES, c=10.0)

    logits, features = model.raw_scores(train[0][:7])

    assert logits.shape == (7, ROUTES)
    assert features.shape == (7, 2)


def test_energy_and_closeness_are_higher_inside_a_cluster_than_far_from_all(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    model = fit_linear(*train, n_routes=ROUTES, c=10.0)
    inside, _ = clusters(seed=6, per_route=10)

    _, near = model.raw_scores(inside)
    _, far = model.raw_scores(far_points(seed=7, count=20))

    energy, closeness = 0, 1  # closeness: minus the squared distance to the nearest centroid
    assert near[:, energy].min() > far[:, energy].max()
    assert near[:, closeness].min() > far[:, closeness].max()


# -- fit: where the calibration comes from ----------------------------------------------------


def test_without_held_out_prompts_the_utterances_are_cross_validated(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    _, calibration = fit(*train, n_routes=ROUTES)

    assert calibration.source == "cross-validation"
    assert calibration.held_out == len(train[1])
    assert calibration.accept_rate == classifier.DEFAULT_ACCEPT_RATE


def test_held_out_in_scope_prompts_calibrate_and_are_counted(
    calibrated: tuple[LinearModel, Calibration],
) -> None:
    _, calibration = calibrated

    assert calibration.source == "calibration"
    assert calibration.held_out == 4 * 10  # the out-of-scope prompts are not in-scope examples
    assert calibration.accept_rate == 0.9


def test_held_out_prompts_are_also_trained_on(train: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, labels = train
    keep = labels != 3  # route 3 has no utterance: only the calibration file knows it
    held_x, held_y = clusters(seed=1, per_route=10)

    model, _ = fit(vectors[keep], labels[keep], ROUTES, held_x, [int(y) for y in held_y])

    test_x, test_y = clusters(seed=5, per_route=20)
    logits, _ = model.raw_scores(test_x[test_y == 3])
    assert (logits.argmax(axis=1) == 3).mean() >= 0.95


def test_too_few_in_scope_held_out_prompts_fall_back_to_cross_validation(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    held_x, _ = clusters(seed=1, per_route=1)

    _, calibration = fit(
        *train, n_routes=ROUTES, held_out_vectors=held_x[:3], held_out_labels=[0, 1, None]
    )

    assert calibration.source == "cross-validation"


def test_fit_on_fewer_utterances_than_folds_still_calibrates() -> None:
    """One route with one utterance is a valid route set; its index must still build."""
    vectors, labels = clusters(seed=0, per_route=1, spreads=(0.1,))

    model, calibration = fit(vectors, labels, n_routes=1)

    logits, _ = model.raw_scores(vectors)
    assert logits.argmax(axis=1).tolist() == [0]
    assert len(calibration.route_thresholds) == 1


# -- thresholds -------------------------------------------------------------------------------


def test_calibrated_threshold_accepts_about_accept_rate_of_new_in_scope_prompts(
    calibrated: tuple[LinearModel, Calibration],
) -> None:
    model, calibration = calibrated
    fresh, _ = clusters(seed=8, per_route=50)

    accepted = (in_scope_scores(model, calibration, fresh) >= calibration.threshold).mean()

    assert 0.8 <= accepted <= 1.0


def test_threshold_is_the_accept_rate_quantile_of_the_held_out_scores(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    for rate in (0.6, 0.9, 0.99):
        _, calibration = fit(*train, n_routes=ROUTES, accept_rate=rate)
        scores = cross_validated_scores(train, calibration)

        assert (scores >= calibration.threshold).mean() == pytest.approx(rate, abs=0.02)


def cross_validated_scores(
    train: tuple[np.ndarray, np.ndarray], calibration: Calibration
) -> np.ndarray:
    """The held-out in-scope scores ``fit`` calibrated on (same folds, same seed)."""
    held = classifier._held_out_scores(*train, ROUTES, classifier.DEFAULT_C, folds=3)
    features = np.stack([classifier._energy(held.logits, ROUTES), held.closeness], axis=1)
    return calibration.in_scope(features)


def test_route_thresholds_lie_between_the_routes_own_quantile_and_the_global_one() -> None:
    # Route 0 is tight (high in-scope scores), route 1 diffuse (low ones).
    train = clusters(seed=0, per_route=30, spreads=(0.05, 0.4, 0.15, 0.15))
    _, calibration = fit(*train, n_routes=ROUTES)
    scores = cross_validated_scores(train, calibration)

    assert len(calibration.route_thresholds) == ROUTES
    for route, threshold in enumerate(calibration.route_thresholds):
        own = float(np.quantile(scores[train[1] == route], 1 - calibration.accept_rate))
        low, high = sorted((own, calibration.threshold))
        assert low - 1e-9 <= threshold <= high + 1e-9, route
    assert calibration.route_thresholds[0] > calibration.threshold
    assert calibration.route_thresholds[1] < calibration.threshold


def test_a_route_keeps_more_of_its_own_threshold_the_more_rejections_its_prompts_hold() -> None:
    # The same tight route 0: at a low accept rate its 30 held-out scores hold many expected
    # rejections and its own quantile is trusted; at 0.99 they hold 0.3 and the global one is.
    train = clusters(seed=0, per_route=30, spreads=(0.05, 0.4, 0.15, 0.15))

    def own_share(rate: float) -> float:
        _, calibration = fit(*train, n_routes=ROUTES, accept_rate=rate)
        scores = cross_validated_scores(train, calibration)
        own = float(np.quantile(scores[train[1] == 0], 1 - rate))
        moved = calibration.route_thresholds[0] - calibration.threshold
        return moved / (own - calibration.threshold)

    assert own_share(0.6) > 0.5 > own_share(0.99) > 0.0


def test_route_without_held_out_prompts_inherits_the_global_threshold(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    vectors, labels = train
    keep = labels != 3

    _, calibration = fit(vectors[keep], labels[keep], n_routes=ROUTES)

    assert calibration.route_thresholds[3] == calibration.threshold


# -- out of scope and confidence --------------------------------------------------------------


def test_out_of_scope_points_score_below_the_threshold(
    calibrated: tuple[LinearModel, Calibration],
) -> None:
    model, calibration = calibrated

    scores = in_scope_scores(model, calibration, far_points(seed=9, count=30))

    assert (scores < calibration.threshold).all()
    assert (scores < min(calibration.route_thresholds)).all()


def served_confidence(model: LinearModel, calibration: Calibration, x: np.ndarray) -> np.ndarray:
    """The confidence the service states for prompts at ``x``."""
    logits, features = model.raw_scores(x)
    no_route = softmax(logits)[:, ROUTES] if model.has_none else np.zeros(len(x))
    return decision_confidence(
        calibration,
        calibration.in_scope(features),
        classifier.top_route_probability(logits, ROUTES),
        no_route,
    )


def test_out_of_scope_points_get_lower_confidence_than_in_cluster_points(
    calibrated: tuple[LinearModel, Calibration],
) -> None:
    model, calibration = calibrated
    inside, _ = clusters(seed=8, per_route=10)

    near = served_confidence(model, calibration, inside)
    far = served_confidence(model, calibration, far_points(seed=9, count=30))

    assert far.max() < near.min()
    assert near.min() > 0.5 > far.max()


def fit_with_few_out_of_scope(
    train: tuple[np.ndarray, np.ndarray],
) -> tuple[LinearModel, Calibration]:
    """Held-out prompts of every route plus one out-of-scope prompt too few for a class."""
    vectors, labels = train
    held_x, held_y = clusters(seed=1, per_route=10)
    few = classifier.MIN_NONE_EXAMPLES - 1
    return fit(
        vectors,
        labels,
        ROUTES,
        np.vstack([held_x, far_points(seed=2, count=few)]),
        [int(label) for label in held_y] + [None] * few,
    )


def test_a_few_out_of_scope_prompts_teach_a_confidence_that_grows_with_the_in_scope_score(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    """Too few to be a "none" class, they are the wrong decisions the map learns from."""
    model, calibration = fit_with_few_out_of_scope(train)
    scores = np.linspace(-6.0, 6.0, 200)

    confidence = calibration.confidence(scores, np.full(200, 0.9))

    assert not model.has_none
    assert ((confidence > 0) & (confidence < 1)).all()
    assert (np.diff(confidence) > 0).all()
    far = served_confidence(model, calibration, far_points(seed=9, count=30))
    near = served_confidence(model, calibration, clusters(seed=8, per_route=10)[0])
    assert far.max() < near.min()


def test_with_a_none_class_the_confidence_map_learns_from_in_scope_prompts_only(
    calibrated: tuple[LinearModel, Calibration],
) -> None:
    """The "none" class's probability already lowers a junk prompt's confidence; the map
    counting the "none" rows as wrong decisions too made every decision look doubtful.
    Here every held-out in-scope decision is right, so the map is the top probability."""
    model, calibration = calibrated

    assert model.has_none
    assert calibration.platt == (0.0, 0.0, 1.0)


def test_confidence_is_the_top_probability_when_every_held_out_decision_was_right(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    """Nothing to learn a slope from: the classifier's own probability is the confidence."""
    _, calibration = fit(*train, n_routes=ROUTES)

    confidence = calibration.confidence(np.zeros(3), np.array([0.2, 0.6, 0.95]))

    assert confidence == pytest.approx([0.2, 0.6, 0.95])


# -- serialisation and helpers ----------------------------------------------------------------


def test_calibration_round_trips_through_json(
    calibrated: tuple[LinearModel, Calibration],
) -> None:
    _, calibration = calibrated

    restored = Calibration.from_json(json.loads(json.dumps(calibration.to_json())))

    assert restored == calibration


def test_linear_model_round_trips_through_arrays_and_npz(
    calibrated: tuple[LinearModel, Calibration],
) -> None:
    model, _ = calibrated
    buffer = io.BytesIO()
    np.savez(buffer, **model.to_arrays())
    buffer.seek(0)

    with np.load(buffer) as arrays:
        restored = LinearModel.from_arrays(arrays)

    for name, array in model.to_arrays().items():
        np.testing.assert_array_equal(restored.to_arrays()[name], array)
        assert restored.to_arrays()[name].dtype == np.float32
    probe = clusters(seed=4, per_route=2)[0]
    np.testing.assert_allclose(restored.raw_scores(probe)[0], model.raw_scores(probe)[0])


def test_softmax_rows_are_distributions_even_for_extreme_logits() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1e4], [-1e4, -1e4, -1e4]])

    probabilities = softmax(logits)

    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities[0].argmax() == 2
    assert probabilities[1, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(probabilities[2], 1 / 3)


# -- class balance and the "none" class ------------------------------------------------------


def test_a_route_of_five_examples_beside_routes_of_hundreds_wins_its_own_prompts() -> None:
    # Unweighted, the same fit gives route 3 about a third of these prompts.
    big, big_labels = clusters(seed=5, per_route=200, spreads=(0.2,) * ROUTES)
    small = big_labels == 3
    keep = ~small | (np.cumsum(small) <= 5)  # route 3 keeps 5 examples
    model = fit_linear(big[keep], big_labels[keep], ROUTES, 1.0)
    new_x, new_y = clusters(seed=6, per_route=50, spreads=(0.2,) * ROUTES)

    logits, _ = model.raw_scores(new_x[new_y == 3])

    assert (logits.argmax(axis=1) == 3).mean() >= 0.9


def test_enough_out_of_scope_prompts_become_a_none_class_that_claims_far_points(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    vectors, labels = train
    held_x, held_y = clusters(seed=1, per_route=10)
    model, calibration = fit(
        vectors,
        labels,
        ROUTES,
        np.vstack([held_x, far_points(seed=2, count=40)]),
        [int(label) for label in held_y] + [None] * 40,
    )

    logits, _ = model.raw_scores(far_points(seed=9, count=20))
    inside, _ = model.raw_scores(clusters(seed=10, per_route=5)[0])

    assert model.has_none and model.weights.shape == (DIM, ROUTES + 1)
    assert (logits.argmax(axis=1) == ROUTES).mean() >= 0.9
    assert (inside.argmax(axis=1) < ROUTES).all()
    assert calibration.held_out == 4 * 10  # thresholds come from in-scope prompts only


def test_a_few_out_of_scope_prompts_only_teach_the_confidence(
    train: tuple[np.ndarray, np.ndarray],
) -> None:
    model, _ = fit_with_few_out_of_scope(train)

    assert not model.has_none and model.weights.shape == (DIM, ROUTES)


# -- the lexical model -------------------------------------------------------------------------

WORDS = ("alarm wake morning", "weather rain forecast", "recipe bake oven", "music song play")


def worded(seed: int, per_route: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embeddings that cannot tell routes 0 and 1 apart (one shared cluster), words that can."""
    vectors, labels = clusters(seed, per_route)
    vectors[labels == 1] = clusters(seed + 100, per_route)[0][: int((labels == 1).sum())]
    rng = np.random.default_rng(seed)
    texts = [
        f"{' '.join(rng.permutation(WORDS[label].split()))} please {rng.integers(1000)}"
        for label in labels
    ]
    return vectors, labels, texts


def test_words_decide_where_the_embedding_cannot_tell_two_routes_apart() -> None:
    vectors, labels, texts = worded(seed=0, per_route=30)
    new_x, new_y, new_texts = worded(seed=1, per_route=20)
    blind, _ = fit(vectors, labels, ROUTES)
    model, calibration = fit(vectors, labels, ROUTES, texts=texts)

    with_words = model.raw_scores(new_x, new_texts)[0].argmax(axis=1)
    without = blind.raw_scores(new_x)[0].argmax(axis=1)

    confused = new_y < 2
    assert model.uses_lexical and model.lexical_weight > 0
    assert (with_words[confused] == new_y[confused]).mean() >= 0.95
    assert (without[confused] == new_y[confused]).mean() <= 0.75
    assert calibration.source == "cross-validation"


def test_without_texts_at_scoring_the_embedding_decides_alone() -> None:
    vectors, labels, texts = worded(seed=0, per_route=30)
    model, _ = fit(vectors, labels, ROUTES, texts=texts)
    embedding_only = LinearModel(model.weights, model.bias, model.centroids)
    probe = clusters(seed=4, per_route=2)[0]

    np.testing.assert_allclose(model.raw_scores(probe)[0], embedding_only.raw_scores(probe)[0])


def test_the_lexical_weight_is_chosen_on_held_out_prompts_with_their_texts() -> None:
    vectors, labels, texts = worded(seed=0, per_route=30)
    held_x, held_y, held_texts = worded(seed=2, per_route=10)

    model, calibration = fit(
        vectors,
        labels,
        ROUTES,
        held_x,
        [int(label) for label in held_y],
        texts=texts,
        held_out_texts=held_texts,
    )

    assert calibration.source == "calibration"
    assert model.lexical_weight in classifier.LEXICAL_WEIGHTS and model.lexical_weight > 0
    new_x, new_y, new_texts = worded(seed=3, per_route=10)
    assert (model.raw_scores(new_x, new_texts)[0].argmax(axis=1) == new_y).mean() >= 0.95


def test_words_that_carry_no_route_get_no_weight(train: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, labels = train
    texts = ["the same words every time"] * len(labels)

    model, _ = fit(vectors, labels, ROUTES, texts=texts)

    assert model.lexical_weight == 0.0 and not model.uses_lexical


def test_lexical_model_round_trips_through_npz_and_a_wrong_shape_is_refused() -> None:
    vectors, labels, texts = worded(seed=0, per_route=30)
    model, _ = fit(vectors, labels, ROUTES, texts=texts)
    buffer = io.BytesIO()
    np.savez(buffer, **model.to_arrays())
    buffer.seek(0)

    with np.load(buffer) as arrays:
        restored = LinearModel.from_arrays(arrays)
    probe_x, _, probe_texts = worded(seed=5, per_route=2)

    assert restored.lexical_weight == model.lexical_weight
    assert restored.lexical_systems == model.lexical_systems == ("LATIN",)
    np.testing.assert_allclose(
        restored.raw_scores(probe_x, probe_texts)[0], model.raw_scores(probe_x, probe_texts)[0]
    )
    broken = {**model.to_arrays(), "lexical_weights": np.zeros((8, ROUTES), dtype=np.float32)}
    with pytest.raises(ValueError, match="lexical weights"):
        LinearModel.from_arrays(broken)


def test_words_never_argue_against_a_route_of_a_few_examples_or_the_none_class() -> None:
    vectors, labels, texts = worded(seed=0, per_route=30)
    small = labels == 3
    keep = ~small | (np.cumsum(small) <= 5)  # route 3 keeps 5 examples
    junk = far_points(seed=2, count=12)
    model = fit_linear(
        np.vstack([vectors[keep], junk]),
        np.concatenate([labels[keep], np.full(len(junk), ROUTES)]),
        ROUTES,
        classifier.DEFAULT_C,
        with_none=True,
        texts=[t for t, k in zip(texts, keep, strict=True) if k] + ["qwzx plonk"] * len(junk),
    )
    # Prompts of the small route in words it never saw, and prompts of the large routes.
    prompts = ["play me some jazz", "put on my road trip playlist", *texts[:20]]

    lexical_logits = model.lexical_logits(prompts)

    assert model.lexical_known is not None
    assert model.lexical_known.tolist() == [True, True, True, False, False]
    best_known = lexical_logits[:, :3].max(axis=1)
    assert (lexical_logits[:, 3] >= best_known - 1e-6).all()
    assert (lexical_logits[:, ROUTES] >= best_known - 1e-6).all()


def test_words_of_a_writing_system_seen_in_one_route_do_not_pull_its_prompts_there() -> None:
    vectors, labels, texts = worded(seed=0, per_route=30)
    # Every Cyrillic row is route 2's: its letters would stand for route 2.
    russian = labels == 2
    texts = [
        f"рецепт духовка {text}" if r else text for text, r in zip(texts, russian, strict=True)
    ]

    model, _ = fit(vectors, labels, ROUTES, texts=texts)
    prompt = ["рецепт в духовке очень вкусный, alarm"]  # one of route 0's words
    ungated = replace(model, lexical_systems=None)

    assert model.lexical_systems == ("LATIN",)
    assert model.lexical_logits(prompt)[0, :ROUTES].argmax() == 0
    assert ungated.lexical_logits(prompt)[0, :ROUTES].argmax() == 2
