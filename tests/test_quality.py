"""Learned expected quality per model, and the model choice that weighs it against price."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CODING_PROMPT, SMALL_ROUTER, WriteRoutes
from test_dynamic_routing import COSTS, FULL, MINI, MODELS, NANO, tiered_routes

from service.config.outcomes import OutcomeRow
from service.config.routes import load_route_set
from service.encoding.encoder import Encoder
from service.index import quality
from service.index.store import build_index, load_index
from service.routing.router import Router
from service.routing.tier_choice import TierRequest, choose_model
from service.routing.types import RouteRequest

# -- the estimator ------------------------------------------------------------------------------


def two_topics(n: int = 200) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Model 0 is right everywhere, model 1 only on the first topic."""
    rng = np.random.default_rng(0)
    topic = np.arange(n) % 2
    vectors = np.eye(8, dtype=np.float32)[topic] * 2 + rng.normal(0, 0.3, (n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = np.stack([np.ones(n), (topic == 0).astype(float)], axis=1)
    return vectors, [f"prompt {i}" for i in range(n)], scores


def test_the_estimate_follows_where_each_model_was_right() -> None:
    vectors, texts, scores = two_topics()

    model = quality.fit(vectors, texts, scores, ["good", "narrow"])

    assert model is not None
    first, second = np.eye(8, dtype=np.float32)[:2]
    on_first = model.expected_one(first, "a prompt")
    on_second = model.expected_one(second, "a prompt")
    assert on_first["narrow"] > 0.6 > 0.4 > on_second["narrow"]
    assert on_second["good"] > 0.9  # right on every row: a constant, confident estimate


def test_fractional_scores_fit_as_expected_values() -> None:
    vectors, texts, _ = two_topics()
    scores = np.full((len(texts), 1), 0.3)

    model = quality.fit(vectors, texts, scores, ["rated"])

    assert model is not None
    assert model.expected(vectors, texts)[:, 0] == pytest.approx(0.3, abs=0.02)


def test_a_model_scored_on_too_few_rows_gets_no_estimate() -> None:
    vectors, texts, scores = two_topics()
    scores[quality.MIN_ROWS - 1 :, 1] = np.nan

    model = quality.fit(vectors, texts, scores, ["good", "rare"])

    assert model is not None and model.models == ("good",)
    assert quality.fit(vectors[:5], texts[:5], scores[:5], ["good", "rare"]) is None


def test_rows_are_matched_to_models_by_name_whatever_else_they_score() -> None:
    rows = [
        OutcomeRow("a", {"x": 1.0, "y": 0.0}),
        OutcomeRow("b", {"y": 1.0}),
    ]

    matrix = quality.score_matrix(rows, ["x", "y"])

    assert np.array_equal(np.isnan(matrix), [[False, False], [True, False]])


def four_patterns(n: int = 400) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Four topics: both models right, only the first, only the second, neither."""
    rng = np.random.default_rng(2)
    topic = np.arange(n) % 4
    vectors = np.eye(8, dtype=np.float32)[topic] * 2 + rng.normal(0, 0.3, (n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    patterns = np.asarray(quality.PATTERNS, dtype=float)
    return vectors, [f"prompt {i}" for i in range(n)], patterns[topic], topic


def test_two_models_scored_on_the_same_rows_are_estimated_jointly() -> None:
    vectors, texts, scores, _ = four_patterns()

    model = quality.fit(vectors, texts, scores, ["strong", "weak"])

    assert model is not None and model.joint
    expected = model.expected(np.eye(8, dtype=np.float32)[:4], ["a prompt"] * 4)
    gain = expected[:, 0] - expected[:, 1]
    both, only_strong, only_weak, neither = gain
    assert only_strong > 0.5 and only_weak < -0.5
    assert abs(both) < 0.2 and abs(neither) < 0.2
    assert expected[0].min() > 0.7 and expected[3].max() < 0.3
    loaded = quality.QualityModel.from_arrays(model.to_arrays())
    assert loaded.joint
    assert np.allclose(loaded.expected(vectors, texts), model.expected(vectors, texts))


def test_the_joint_estimate_of_fractional_scores_keeps_each_model_s_mean() -> None:
    vectors, texts, _, _ = four_patterns()
    scores = np.tile([0.8, 0.3], (len(texts), 1))

    model = quality.fit(vectors, texts, scores, ["strong", "weak"])

    assert model is not None and model.joint
    assert model.expected(vectors, texts).mean(axis=0) == pytest.approx([0.8, 0.3], abs=0.02)


def test_models_not_scored_on_the_same_rows_are_estimated_one_by_one() -> None:
    vectors, texts, scores, _ = four_patterns()
    gaps = scores.copy()
    gaps[:10, 1] = np.nan
    third = np.hstack([scores, scores[:, :1]])

    with_gaps = quality.fit(vectors, texts, gaps, ["strong", "weak"])
    three = quality.fit(vectors, texts, third, ["a", "b", "c"])

    assert with_gaps is not None and not with_gaps.joint
    assert three is not None and not three.joint
    assert with_gaps.rows.tolist() == [len(texts), len(texts) - 10]


def test_weights_round_trip_through_arrays() -> None:
    vectors, texts, scores = two_topics()
    model = quality.fit(vectors, texts, scores, ["good", "narrow"])
    assert model is not None

    loaded = quality.QualityModel.from_arrays(model.to_arrays())

    assert loaded.models == model.models
    assert np.allclose(loaded.expected(vectors, texts), model.expected(vectors, texts))


def test_arrays_of_another_bucket_count_are_refused() -> None:
    vectors, texts, scores = two_topics()
    model = quality.fit(vectors, texts, scores, ["good", "narrow"])
    assert model is not None
    arrays = model.to_arrays()
    arrays["ngram_weights"] = arrays["ngram_weights"][: len(arrays["idf"]) // 2]

    with pytest.raises(ValueError, match="buckets"):
        quality.QualityModel.from_arrays(arrays)


def word_gain(n: int = 400) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Prompts whose embedding is noise; the weak model fails exactly those that ask for a
    proof, the strong one is right everywhere. Only the words can tell them apart."""
    rng = np.random.default_rng(1)
    proof = np.arange(n) % 2 == 1
    topics = ["rivers", "bread", "music", "stars", "trees"]
    texts = [
        f"{'prove that the lemma on' if hard else 'list a few facts about'} {topics[i % 5]} {i}"
        for i, hard in enumerate(proof)
    ]
    vectors = rng.normal(size=(n, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = np.stack([np.ones(n), (~proof).astype(float)], axis=1)
    return vectors, texts, scores, proof


def test_words_the_embedding_misses_still_rank_the_gain() -> None:
    vectors, texts, scores, proof = word_gain()
    train, test = np.arange(300), np.arange(300, 400)

    model = quality.fit(vectors[train], [texts[i] for i in train], scores[train], ["s", "w"])

    assert model is not None
    expected = model.expected(vectors[test], [texts[i] for i in test])
    gain = expected[:, 0] - expected[:, 1]
    # Every prompt the weak model fails is ranked above every prompt it gets right.
    assert gain[proof[test]].min() > gain[~proof[test]].max()


def test_the_one_prompt_estimate_matches_the_batch_one() -> None:
    vectors, texts, scores, _ = word_gain()
    model = quality.fit(vectors, texts, scores, ["s", "w"])
    assert model is not None

    batch = model.expected(vectors[:3], texts[:3])

    for i in range(3):
        one = model.expected_one(vectors[i], texts[i])
        assert [one["s"], one["w"]] == pytest.approx(batch[i].tolist())


def test_words_and_word_pairs_are_counted_whatever_their_case() -> None:
    counts = quality.ngram_counts("The cat saw the CAT")

    assert counts == quality.ngram_counts("the cat saw the cat")
    assert sum(counts.values()) == 5 + 4  # five words, four adjacent pairs
    assert len(counts) <= 6 and max(counts.values()) >= 2  # "the", "cat", "the cat" twice
    assert quality.ngram_counts("a ! ?") == {}  # one-letter words and symbols carry nothing


def test_a_long_prompt_is_read_at_its_two_ends_only() -> None:
    words = [f"w{i}" for i in range(4 * quality.MAX_WORDS)]
    ends = words[: quality.MAX_WORDS // 2] + words[-quality.MAX_WORDS // 2 :]

    counts = quality.ngram_counts(" ".join(words))

    assert sum(counts.values()) == quality.MAX_WORDS + quality.MAX_WORDS - 1
    assert counts == quality.ngram_counts(" ".join(ends))


def test_a_prompt_without_any_known_word_is_estimated_from_its_embedding() -> None:
    vectors, texts, scores = two_topics()
    model = quality.fit(vectors, texts, scores, ["good", "narrow"])
    assert model is not None
    first, second = np.eye(8, dtype=np.float32)[:2]

    on_first = model.expected_one(first, "zzqx wvvy")
    on_second = model.expected_one(second, "")

    assert on_first["narrow"] > 0.6 > 0.4 > on_second["narrow"]


# -- the policy ---------------------------------------------------------------------------------


def pick(expected: dict[str, float], **limits: Any) -> Any:
    request = TierRequest(**{"cost_quality": 0.05, **limits})
    return choose_model(MODELS, "balanced", request, {}, COSTS, expected)


def test_the_cheapest_model_wins_unless_a_pricier_one_is_worth_its_price() -> None:
    # Prices per 1k: nano 0.00025, mini 0.001, full 0.005. At cost_quality 0.05 a point of
    # quality is worth $0.05/1k: mini must beat nano by more than 0.015, full by 0.095.
    near = pick({NANO: 0.80, MINI: 0.81, FULL: 0.85})
    far = pick({NANO: 0.50, MINI: 0.52, FULL: 0.90})

    assert near.model == NANO and near.note.startswith("cheapest model")
    assert far.model == FULL and f"of {NANO}" in far.note


def test_willingness_to_pay_moves_the_choice() -> None:
    expected = {NANO: 0.70, MINI: 0.76, FULL: 0.79}

    assert pick(expected, cost_quality=0.001).model == NANO
    assert pick(expected, cost_quality=0.1).model == MINI
    assert pick(expected, cost_quality=100.0).model == FULL


def test_equal_value_goes_to_the_cheaper_model() -> None:
    # mini's extra 0.015 quality over nano is exactly its extra price / cost_quality.
    expected = {NANO: 0.5, MINI: 0.5 + (COSTS[MINI] - COSTS[NANO]) / 0.05, FULL: 0.0}

    assert pick(expected).model == NANO


def test_a_model_without_outcomes_is_left_out_and_shown_as_unknown() -> None:
    choice = pick({MINI: 0.6, FULL: 0.9})

    assert choice.model == FULL
    views = {view.model: view for view in choice.candidates}
    assert views[NANO].expected_quality is None and views[NANO].value is None


def test_the_requested_tier_and_cost_limit_still_bound_the_learned_choice() -> None:
    expected = {NANO: 0.9, MINI: 0.5, FULL: 0.95}

    assert pick(expected, quality="balanced").model == FULL
    assert pick(expected, quality="balanced", max_cost_per_1k_tokens=0.002).model == MINI
    views = {v.model: v for v in pick(expected, quality="balanced").candidates}
    assert not views[NANO].allowed and views[FULL].allowed


def test_without_any_estimate_the_tier_rule_applies() -> None:
    assert pick({}).model == MINI
    assert pick({}).note == "cheapest model of tier >= balanced"


# -- in the router ------------------------------------------------------------------------------

CODE_TASKS = [
    "fix the segfault in my C program",
    "why does this python loop never end",
    "refactor this java class into smaller methods",
    "write a unit test for this typescript function",
    "explain this rust lifetime compile error",
]
SMALL_TALK = ["hello, how are you", "thanks, have a nice day", "good morning friend"]


def outcome_file(folder: Path) -> None:
    """Code: only the full model is right; small talk: every model is (each judged 12 times)."""
    lines = []
    for _ in range(12):
        for task in CODE_TASKS:
            lines.append({"prompt": task, "outcomes": {NANO: 0, MINI: 0, FULL: 1}})
        for talk in SMALL_TALK:
            lines.append({"prompt": talk, "outcomes": {NANO: 1, MINI: 1, FULL: 1}})
    (folder / "outcomes").mkdir()
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (folder / "outcomes" / "o.jsonl").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def outcome_index(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import write_route_folder

    base = tmp_path_factory.mktemp("outcomes")
    folder = write_route_folder(base / "routes", tiered_routes(), SMALL_ROUTER)
    outcome_file(folder)
    build_index(load_route_set(folder), encoder, base / "index")
    return base / "index"


@pytest.fixture
def router(
    outcome_index: Path, encoder: Encoder, tmp_path: Path, write_routes: WriteRoutes
) -> Iterator[Router]:
    folder = write_routes(tmp_path / "routes", tiered_routes(), SMALL_ROUTER)
    outcome_file(folder)
    instance = Router(load_route_set(folder), load_index(outcome_index), encoder)
    yield instance
    instance.close()


async def test_a_decision_shows_every_candidate_s_expected_quality_and_cost(
    router: Router,
) -> None:
    decision = await router.decide(RouteRequest(prompt=CODING_PROMPT, cost_quality=1.0))

    assert decision.route == "coding" and decision.model == FULL
    assert decision.complexity is None  # the learned estimate supersedes it
    shown = {c.model: c for c in decision.model_candidates or []}
    assert set(shown) == {NANO, MINI, FULL}
    assert shown[FULL].expected_quality > shown[NANO].expected_quality  # type: ignore[operator]
    assert shown[FULL].expected_cost_per_1k_tokens is not None
    assert decision.model_reason is not None and "worth its extra" in decision.model_reason


async def test_a_low_willingness_to_pay_keeps_the_cheap_model(router: Router) -> None:
    decision = await router.decide(RouteRequest(prompt=CODING_PROMPT, cost_quality=0.0001))

    assert decision.model == NANO
    assert decision.model_reason is not None and decision.model_reason.startswith("cheapest")


async def test_an_override_is_estimated_from_an_embedding_made_for_it(router: Router) -> None:
    decision = await router.decide(
        RouteRequest(prompt="hello there my friend", route="coding", cost_quality=1.0)
    )

    shown = {c.model: c.expected_quality for c in decision.model_candidates or []}
    assert shown[NANO] is not None and shown[NANO] > 0.5


def test_route_and_openai_headers_show_the_candidates(
    outcome_index: Path, encoder: Encoder, tmp_path: Path, write_routes: WriteRoutes
) -> None:
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.api.openai_api import decision_headers
    from service.config.settings import Settings
    from service.routing.types import Decision

    folder = write_routes(tmp_path / "routes", tiered_routes(), SMALL_ROUTER)
    outcome_file(folder)
    settings = Settings(routes_dir=folder, index_dir=outcome_index)
    with TestClient(create_app(settings, encoder=encoder)) as client:
        body = client.post("/route", json={"prompt": CODING_PROMPT, "cost_quality": 1.0}).json()
        refused = client.post("/route", json={"prompt": CODING_PROMPT, "cost_quality": 0})

    assert body["model"] == FULL
    assert [c["model"] for c in body["model_candidates"]] == [NANO, MINI, FULL]
    assert all(c["expected_quality"] is not None for c in body["model_candidates"])
    assert refused.status_code == 422
    headers = decision_headers(Decision.model_validate(body), served=FULL)
    assert headers["x-semroute-model-candidates"].startswith(f"{NANO};quality=")
    assert "worth its extra" in headers["x-semroute-model-reason"]
