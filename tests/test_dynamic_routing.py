"""Dynamic routing: tiered models per route, chosen by quality, cost, latency or complexity."""

import asyncio
import copy
import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    CODING_PROMPT,
    REPO_ROOT,
    SMALL_ROUTER,
    SMALL_ROUTES,
    WriteRoutes,
    add_complexity_examples,
    offline_env,
)
from llm_fixtures import (  # noqa: F401
    API_ROUTES,
    MakeClient,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)

from service.config.complexity_examples import COMPLEXITY_FILE
from service.config.routes import RouteSetError, load_route_set
from service.config.tiers import TieredModel
from service.encoding.encoder import Encoder
from service.index import complexity
from service.index.store import load_index
from service.routing.router import Router
from service.routing.semantic import Embedder
from service.routing.tier_choice import TierRequest, choose_model, litellm_cost_per_1k
from service.routing.types import RouteRequest
from service.tools import dynamic_eval

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
    return choose_model(MODELS, wanted, TierRequest(**limits), {}, COSTS)  # type: ignore[arg-type]


def tiered_routes(**coding: Any) -> dict[str, Any]:
    routes = copy.deepcopy(SMALL_ROUTES)
    routes["coding"] = {**routes["coding"], "models": TIERED, **coding}
    return routes


class CountingEncoder:
    """The real encoder, recording every prompt embedded one at a time."""

    def __init__(self, inner: Encoder):
        self.inner = inner
        self.dimension = inner.dimension
        self.encoded: list[str] = []

    def encode_one(self, text: str) -> np.ndarray:
        self.encoded.append(text)
        return self.inner.encode_one(text)

    def encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return self.inner.encode_cached(texts)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self.inner.encode(texts, batch_size=batch_size, progress=progress)


@pytest.fixture
def make_router(
    tmp_path: Path,
    write_routes: WriteRoutes,
    small_index: Path,
    complexity_index: Path,
    encoder: Encoder,
) -> Iterator[MakeRouter]:
    """``make_router(with_complexity=False, embedder=None, **coding_fields)``: coding has
    tiered models; with complexity, the routes hold complexity examples and the index was
    built from them."""
    routers: list[Router] = []

    def make(
        with_complexity: bool = False, embedder: Embedder | None = None, **coding: Any
    ) -> Router:
        folder = write_routes(
            tmp_path / f"routes-{len(routers)}", tiered_routes(**coding), SMALL_ROUTER
        )
        index = small_index
        if with_complexity:
            add_complexity_examples(folder)
            index = complexity_index
        router = Router(load_route_set(folder), load_index(index), embedder or encoder)
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
    limits = TierRequest(max_latency_ms=1000)

    assert choose_model(MODELS, "best", limits, {}, COSTS).model == MINI, "prior 2500 ms"
    assert choose_model(MODELS, "best", limits, {FULL: 800.0}, COSTS).model == FULL
    assert choose_model(MODELS, "best", limits, {FULL: 1200.0}, COSTS).model == MINI


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


async def test_an_index_built_without_complexity_examples_keeps_the_route_s_own_model(
    make_router: MakeRouter,
) -> None:
    router = make_router(model=FULL)
    assert router.index.complexity is None

    decision = await router.decide(RouteRequest(prompt=HARD_PROMPT, route="coding"))

    assert decision.complexity is None
    assert (decision.model, decision.tier) == (FULL, "best")


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

    easy = await router.decide(RouteRequest(prompt=EASY_PROMPT, route="coding"))
    hard = await router.decide(RouteRequest(prompt=HARD_PROMPT, route="coding"))

    assert easy.complexity is not None and hard.complexity is not None
    assert easy.complexity < 0.35 < 0.65 < hard.complexity
    assert (easy.model, easy.tier) == (NANO, "economy")
    assert (hard.model, hard.tier) == (FULL, "best")


async def test_a_semantic_decision_reuses_the_prompt_s_embedding_for_its_complexity(
    make_router: MakeRouter, encoder: Encoder
) -> None:
    counting = CountingEncoder(encoder)
    router = make_router(with_complexity=True, embedder=counting)

    semantic = await router.decide(RouteRequest(prompt=CODING_PROMPT))
    embedded_once = list(counting.encoded)
    override = await router.decide(RouteRequest(prompt=CODING_PROMPT, route="coding"))

    assert (semantic.method, semantic.route) == ("semantic", "coding")
    assert embedded_once == [CODING_PROMPT]
    assert counting.encoded == [CODING_PROMPT] * 2, "an override has no embedding to reuse"
    assert semantic.complexity is not None
    assert semantic.complexity == override.complexity


async def test_a_conversation_s_complexity_is_that_of_its_latest_message(
    make_router: MakeRouter,
) -> None:
    router = make_router(with_complexity=True)
    messages = [
        {"role": "user", "content": "write a python function that parses ISO dates"},
        {"role": "assistant", "content": "Here it is."},
        {"role": "user", "content": HARD_PROMPT},
    ]

    conversation = await router.decide(RouteRequest(messages=messages))
    alone = await router.decide(RouteRequest(prompt=HARD_PROMPT, route="coding"))

    assert conversation.route == "coding"
    assert conversation.complexity is not None
    assert conversation.complexity == alone.complexity


# -- the complexity estimate --------------------------------------------------------------------


def test_complexity_weights_round_trip_through_arrays() -> None:
    rng = np.random.default_rng(0)
    model = complexity.ComplexityModel(
        weights=rng.normal(size=8 + complexity.SURFACE_FEATURES).astype(np.float32),
        bias=-0.3,
        feature_mean=rng.normal(size=complexity.SURFACE_FEATURES).astype(np.float32),
        feature_std=rng.uniform(0.5, 2, complexity.SURFACE_FEATURES).astype(np.float32),
    )
    vectors = rng.normal(size=(3, 8)).astype(np.float32)
    texts = [EASY_PROMPT, HARD_PROMPT, "x = [i**2 for i in range(10)]"]

    restored = complexity.ComplexityModel.from_arrays(model.to_arrays())

    assert np.array_equal(
        restored.hard_probability(vectors, texts), model.hard_probability(vectors, texts)
    )


def test_complexity_separates_held_out_easy_and_hard_prompts(encoder: Encoder) -> None:
    model = complexity.train_from_file(TRAINING, encoder)

    result = dynamic_eval.evaluate(model, HOLDOUT, encoder)

    assert result.examples >= 50
    assert result.accuracy >= 0.85
    assert result.auroc >= 0.9


def test_a_bad_complexity_label_is_rejected_naming_the_line(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    folder = write_routes(tmp_path / "r", SMALL_ROUTES, SMALL_ROUTER)
    (folder / COMPLEXITY_FILE).write_text(
        '{"text": "hi", "label": "easy"}\n{"text": "prove it", "label": "medium"}\n'
    )

    with pytest.raises(RouteSetError) as caught:
        load_route_set(folder)

    assert "complexity.jsonl: line 2: needs a non-empty 'text'" in str(caught.value)


# -- through the API ----------------------------------------------------------------------------

SERVE_AND_LIST_SKLEARN = """
import json, sys
from fastapi.testclient import TestClient
from service.api.app import create_app_from_env

with TestClient(create_app_from_env()) as client:
    bodies = [{"prompt": sys.argv[1]}, {"prompt": sys.argv[1], "route": "coding"}]
    decisions = [client.post("/route", json=body).json() for body in bodies]
sklearn = sorted(name for name in sys.modules if name.split(".")[0] == "sklearn")
print(json.dumps({"decisions": decisions, "sklearn": sklearn}))
"""


def test_serving_tiered_routes_with_a_complexity_estimate_never_imports_sklearn(
    tmp_path: Path, write_routes: WriteRoutes, complexity_index: Path
) -> None:
    """scikit-learn is for fitting at build time; the serving process only loads weights.

    The ONNX encoder backend is used: the torch one imports sklearn through
    sentence-transformers.
    """
    routes = add_complexity_examples(write_routes(tmp_path / "r", tiered_routes(), SMALL_ROUTER))
    env = offline_env(
        SEMROUTE_ROUTES_DIR=str(routes),
        SEMROUTE_INDEX_DIR=str(complexity_index),
        SEMROUTE_ENCODER_BACKEND="onnx",
    )

    result = subprocess.run(
        [sys.executable, "-c", SERVE_AND_LIST_SKLEARN, CODING_PROMPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    served = json.loads(result.stdout.splitlines()[-1])
    semantic, override = served["decisions"]
    assert (semantic["route"], semantic["method"]) == ("coding", "semantic")
    assert override["method"] == "override"
    assert semantic["complexity"] is not None and override["complexity"] is not None
    assert served["sklearn"] == []


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
    state = client.app.state.engine.state  # type: ignore[attr-defined]
    observed = asyncio.run(state.latencies(["openai/ok-math-pro", "openai/ok-math"]))
    assert observed == {"openai/ok-math-pro": pytest.approx(body["attempts"][0]["latency_ms"])}
