"""Dynamic routing: tiered models per route, chosen by quality, cost, latency or complexity."""

import copy
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, SMALL_ROUTER, SMALL_ROUTES, WriteRoutes
from llm_fixtures import (  # noqa: F401
    API_ROUTES,
    MakeClient,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)

from service import complexity
from service.encoder import Encoder
from service.index import load_index
from service.router import Router
from service.routes import RouteSetError, load_route_set
from service.schemas import RouteRequest
from service.tiers import (
    LatencyTracker,
    TieredModel,
    TierRequest,
    choose_model,
    litellm_cost_per_1k,
)

NANO, MINI, FULL = "openai/gpt-4.1-nano", "openai/gpt-4.1-mini", "openai/gpt-4.1"
TIERED = [
    {"model": NANO, "tier": "economy"},
    {"model": MINI, "tier": "balanced", "expected_latency_ms": 900},
    {"model": FULL, "tier": "best", "expected_latency_ms": 2500},
]
MODELS = [TieredModel.model_validate(entry) for entry in TIERED]
COSTS = {NANO: 0.25e-3, MINI: 1.0e-3, FULL: 5.0e-3}
EASY_PROMPT = "what's the plural of mouse"
HARD_PROMPT = (
    "prove that the halting problem is undecidable, then design a static analyser for a "
    "Python subset that soundly over-approximates termination, and discuss its false positives"
)
HOLDOUT = REPO_ROOT / "tests" / "data" / "complexity_holdout.jsonl"
TRAINING = REPO_ROOT / "routes" / "complexity.jsonl"

MakeRouter = Callable[..., Router]


def choose(wanted: str = "balanced", **limits: Any) -> Any:
    return choose_model(MODELS, wanted, TierRequest(**limits), LatencyTracker(), COSTS)  # type: ignore[arg-type]


def tiered_routes(**coding: Any) -> dict[str, Any]:
    routes = copy.deepcopy(SMALL_ROUTES)
    routes["coding"] = {**routes["coding"], "models": TIERED, **coding}
    return routes


@pytest.fixture
def make_router(
    tmp_path: Path, write_routes: WriteRoutes, small_index: Path, encoder: Encoder
) -> Iterator[MakeRouter]:
    """``make_router(with_complexity=False, **coding_fields)``: coding has tiered models."""
    routers: list[Router] = []

    def make(with_complexity: bool = False, **coding: Any) -> Router:
        folder = write_routes(
            tmp_path / f"routes-{len(routers)}", tiered_routes(**coding), SMALL_ROUTER
        )
        if with_complexity:
            shutil.copy(TRAINING, folder / complexity.COMPLEXITY_FILE)
        router = Router(load_route_set(folder), load_index(small_index), encoder)
        routers.append(router)
        return router

    yield make
    for router in routers:
        router.close()


# -- route files --------------------------------------------------------------------------------


def test_tiered_models_load_and_model_defaults_to_the_balanced_one(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    routes = tiered_routes()
    del routes["coding"]["model"]

    coding = load_route_set(write_routes(tmp_path / "r", routes, SMALL_ROUTER)).get("coding")

    assert coding is not None
    assert coding.model == MINI
    assert [(m.model, m.tier) for m in coding.models] == [
        (NANO, "economy"),
        (MINI, "balanced"),
        (FULL, "best"),
    ]


def test_a_route_without_models_keeps_the_single_model_form(small_routes: Path) -> None:
    cooking = load_route_set(small_routes).get("cooking")

    assert cooking is not None and cooking.models == ()
    assert cooking.model == "openai/gpt-4.1-mini"


def test_an_unknown_tier_is_rejected_naming_the_file_and_field(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    routes = tiered_routes(models=[{"model": NANO, "tier": "premium"}])

    with pytest.raises(RouteSetError) as caught:
        load_route_set(write_routes(tmp_path / "r", routes, SMALL_ROUTER))

    (problem,) = caught.value.problems
    assert problem.file.endswith("coding.yaml")
    assert problem.field == "models.0.tier"


def test_the_same_model_twice_in_a_route_is_rejected(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    routes = tiered_routes(models=[TIERED[0], {**TIERED[1], "model": NANO}])

    with pytest.raises(RouteSetError, match="lists the same model twice"):
        load_route_set(write_routes(tmp_path / "r", routes, SMALL_ROUTER))


def test_shipped_routes_still_load_with_their_tiers() -> None:
    route_set = load_route_set(REPO_ROOT / "routes")

    assert any(route.models for route in route_set.routes)
    assert route_set.complexity, "routes/complexity.jsonl trains the complexity estimate"


# -- choosing a model ---------------------------------------------------------------------------


def test_prices_come_from_litellm_as_a_blend_of_input_and_output() -> None:
    # gpt-4.1-nano: $0.10 in and $0.40 out per million tokens in litellm's local cost map.
    assert litellm_cost_per_1k(NANO) == pytest.approx((0.1e-6 + 0.4e-6) / 2 * 1000)
    assert litellm_cost_per_1k("openai/no-such-model-anywhere") is None


def test_the_cheapest_model_of_at_least_the_wanted_tier_is_chosen() -> None:
    assert choose("economy").model == NANO
    assert choose("balanced").model == MINI
    assert choose("best").model == FULL


def test_a_cost_limit_excludes_dearer_models() -> None:
    choice = choose("best", max_cost_per_1k_tokens=2e-3)

    assert choice.model == MINI, "the strongest model within the limit"
    assert "strongest allowed" in choice.note


def test_a_latency_limit_uses_the_declared_prior_then_observed_latencies() -> None:
    tracker = LatencyTracker(alpha=0.5)
    limits = TierRequest(max_latency_ms=1000)

    assert choose_model(MODELS, "best", limits, tracker, COSTS).model == MINI
    tracker.observe(FULL, 800)
    assert choose_model(MODELS, "best", limits, tracker, COSTS).model == FULL
    tracker.observe(FULL, 1600)
    assert tracker.expected(FULL) == pytest.approx(1200)
    assert choose_model(MODELS, "best", limits, tracker, COSTS).model == MINI


def test_when_no_model_meets_the_limits_the_cheapest_is_used_and_said() -> None:
    choice = choose("balanced", max_cost_per_1k_tokens=1e-6)

    assert choice.model == NANO
    assert choice.note.startswith("no model meets the limits")


def test_fallbacks_are_the_other_models_stronger_first() -> None:
    assert choose("balanced").fallbacks == (FULL, NANO)
    assert choose("economy").fallbacks == (MINI, FULL)


# -- in the pipeline ----------------------------------------------------------------------------


async def test_requested_quality_picks_the_route_s_model_and_tier(
    make_router: MakeRouter,
) -> None:
    router = make_router()

    decision = await router.decide(RouteRequest(prompt=EASY_PROMPT, route="coding", quality="best"))

    assert (decision.route, decision.model, decision.tier) == ("coding", FULL, "best")
    assert decision.fallbacks == [MINI, NANO, "anthropic/claude-sonnet-4-5"]
    assert decision.complexity is None, "the request said which quality it wants"


async def test_without_a_complexity_estimate_the_route_s_own_model_is_kept(
    make_router: MakeRouter,
) -> None:
    decision = await make_router(model=FULL).decide(
        RouteRequest(prompt=HARD_PROMPT, route="coding")
    )

    assert (decision.model, decision.tier) == (FULL, "best")


async def test_decisions_do_not_wait_for_the_complexity_estimate_to_train(
    make_router: MakeRouter,
) -> None:
    router = make_router(with_complexity=True)

    decision = await router.decide(RouteRequest(prompt=HARD_PROMPT, route="coding"))

    if decision.complexity is None:  # still training: the route's own model (gpt-4.1)
        assert (decision.model, decision.tier) == (FULL, "best")
    assert await router.complexity_model() is not None


async def test_routes_without_tiers_are_unchanged(make_router: MakeRouter) -> None:
    decision = await make_router().decide(
        RouteRequest(prompt=EASY_PROMPT, route="cooking", quality="best")
    )

    assert decision.model == "openai/gpt-4.1-mini"
    assert decision.tier is None


async def test_complexity_lowers_the_tier_for_easy_prompts_and_raises_it_for_hard_ones(
    make_router: MakeRouter,
) -> None:
    router = make_router(with_complexity=True)
    assert await router.complexity_model() is not None

    easy = await router.decide(RouteRequest(prompt=EASY_PROMPT, route="coding"))
    hard = await router.decide(RouteRequest(prompt=HARD_PROMPT, route="coding"))

    assert easy.complexity is not None and hard.complexity is not None
    assert easy.complexity < 0.35 < 0.65 < hard.complexity
    assert (easy.model, easy.tier) == (NANO, "economy")
    assert (hard.model, hard.tier) == (FULL, "best")


# -- the complexity estimate --------------------------------------------------------------------


def test_complexity_separates_held_out_easy_and_hard_prompts(encoder: Encoder) -> None:
    model = complexity.train_from_file(TRAINING, encoder)

    result = complexity.evaluate(model, HOLDOUT, encoder)

    assert result.examples >= 50
    assert result.accuracy >= 0.85
    assert result.auroc >= 0.9


def test_a_bad_complexity_label_is_rejected_naming_the_line(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    folder = write_routes(tmp_path / "r", SMALL_ROUTES, SMALL_ROUTER)
    (folder / complexity.COMPLEXITY_FILE).write_text(
        '{"text": "hi", "label": "easy"}\n{"text": "prove it", "label": "medium"}\n'
    )

    with pytest.raises(RouteSetError) as caught:
        load_route_set(folder)

    assert "complexity.jsonl: line 2: needs a non-empty 'text'" in str(caught.value)


# -- through the API ----------------------------------------------------------------------------

TIERED_MATH = {
    **API_ROUTES,
    "math": {
        **API_ROUTES["math"],
        "models": [
            {"model": "openai/ok-math", "tier": "economy", "cost_per_1k_tokens": 0.1},
            {"model": "openai/ok-math-pro", "tier": "best", "cost_per_1k_tokens": 2.0},
        ],
    },
}


def test_route_reports_the_chosen_model_and_tier(make_client: MakeClient) -> None:
    client = make_client(routes=TIERED_MATH)

    body = client.post("/route", json={"prompt": "what is 12 times 7", "quality": "best"}).json()

    assert (body["route"], body["model"], body["tier"]) == ("math", "openai/ok-math-pro", "best")
    assert body["fallbacks"] == ["openai/ok-math"]


def test_a_request_field_of_the_wrong_type_is_a_422(make_client: MakeClient) -> None:
    client = make_client(routes=TIERED_MATH)

    response = client.post("/route", json={"prompt": "what is 12 times 7", "quality": "cheap"})

    assert response.status_code == 422


def test_completions_feed_the_observed_latency_of_their_model(make_client: MakeClient) -> None:
    client = make_client(routes=TIERED_MATH)

    body = client.post("/complete", json={"prompt": "what is 12 times 7", "quality": "best"}).json()

    assert body["answer"] == "answer from ok-math-pro"
    latency = client.app.state.engine.router.latency  # type: ignore[attr-defined]
    assert latency.expected("openai/ok-math-pro") == pytest.approx(
        body["attempts"][0]["latency_ms"]
    )
    assert latency.expected("openai/ok-math") is None
