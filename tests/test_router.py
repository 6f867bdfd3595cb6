"""The decision pipeline on a real small index: override -> semantic -> tie-breaker -> default."""

import copy
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    CODING_PROMPT,
    COOKING_PROMPT,
    FAR_PROMPT,
    SMALL_ROUTER,
    SMALL_ROUTES,
    WriteRoutes,
)

from service.config.routes import Route, load_route_set
from service.encoding.encoder import Encoder
from service.index.store import load_index
from service.routing.router import PromptTooLargeError, Router, UnknownRouteError
from service.routing.types import Decision, RouteRequest

MakeRouter = Callable[..., Router]


class FakeTiebreaker:
    """Answers with a fixed route name (or None) and records what it was asked."""

    def __init__(self, answer: str | None):
        self.answer = answer
        self.calls: list[tuple[str, list[str]]] = []

    async def choose(self, text: str, candidates: Sequence[Route]) -> str | None:
        self.calls.append((text, [route.name for route in candidates]))
        return self.answer


@pytest.fixture
def make_router(
    tmp_path: Path, write_routes: WriteRoutes, small_index: Path, encoder: Encoder
) -> Iterator[MakeRouter]:
    """``make_router(policy={...}, **router_kwargs)``: a Router over the small index whose
    ``router.yaml`` is SMALL_ROUTER updated with ``policy``.

    Thresholds and margins are not part of the fingerprint, so every variant shares one index.
    """
    routers: list[Router] = []
    loaded = load_index(small_index)

    def make(policy: dict[str, Any] | None = None, **kwargs: Any) -> Router:
        folder = write_routes(
            tmp_path / f"routes-{len(routers)}",
            copy.deepcopy(SMALL_ROUTES),
            {**SMALL_ROUTER, **(policy or {})},
        )
        router = Router(load_route_set(folder), loaded, encoder, **kwargs)
        routers.append(router)
        return router

    yield make
    for router in routers:
        router.close()


def _request(prompt: str = CODING_PROMPT, **fields: Any) -> RouteRequest:
    return RouteRequest(prompt=prompt, **fields)


# -- override ---------------------------------------------------------------------------------


async def test_override_returns_the_named_route_without_semantic_scores(
    make_router: MakeRouter,
) -> None:
    decision = await make_router().decide(_request(COOKING_PROMPT, route="coding"))

    assert decision.route == "coding"
    assert decision.method == "override"
    assert decision.model == "openai/gpt-4.1"
    assert decision.fallbacks == ["anthropic/claude-sonnet-4-5"]
    assert decision.score is None
    assert decision.candidates == []
    assert decision.reason is None


async def test_unknown_override_raises_naming_the_known_routes(make_router: MakeRouter) -> None:
    with pytest.raises(UnknownRouteError) as caught:
        await make_router().decide(_request(route="weather"))

    assert "'weather'" in str(caught.value)
    assert "coding, cooking, greetings" in str(caught.value)


# -- semantic ---------------------------------------------------------------------------------


async def test_clear_prompt_routes_semantically_with_score_and_candidates(
    make_router: MakeRouter, small_index: Path
) -> None:
    decision = await make_router().decide(_request(CODING_PROMPT))

    assert decision.route == "coding"
    assert decision.method == "semantic"
    assert decision.model == "openai/gpt-4.1"
    assert decision.reason is None
    assert decision.candidates[0].route == "coding"
    # Routes among the nearest utterances, each once.
    assert {c.route for c in decision.candidates} <= {"coding", "cooking", "greetings"}
    assert len({c.route for c in decision.candidates}) == len(decision.candidates) >= 2
    scores = [c.score for c in decision.candidates]
    assert scores == sorted(scores, reverse=True)
    assert decision.score == decision.candidates[0].score
    assert decision.margin == pytest.approx(scores[0] - scores[1], abs=1e-5)
    assert decision.matches is None
    assert decision.index_fingerprint == load_index(small_index).fingerprint
    assert decision.latency_ms >= 0


async def test_each_route_attracts_its_own_prompts(make_router: MakeRouter) -> None:
    router = make_router()

    assert (await router.decide(_request(COOKING_PROMPT))).route == "cooking"
    assert (await router.decide(_request("hello, how are you doing today"))).route == "greetings"


async def test_every_decision_has_its_own_id(make_router: MakeRouter) -> None:
    router = make_router()

    first = await router.decide(_request())
    second = await router.decide(_request())

    assert first.decision_id != second.decision_id


async def test_last_user_message_is_what_gets_routed(make_router: MakeRouter) -> None:
    request = RouteRequest(
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": COOKING_PROMPT},
            {"role": "assistant", "content": "Sure, here is a recipe."},
            {"role": "user", "content": [{"type": "text", "text": CODING_PROMPT}]},
            {"role": "assistant", "content": "Let me look at the code."},
        ]
    )

    decision = await make_router().decide(request)

    assert decision.route == "coding"
    assert decision.method == "semantic"


async def test_explain_lists_the_nearest_utterances_best_first(make_router: MakeRouter) -> None:
    decision = await make_router(top_k=6).decide(_request(COOKING_PROMPT, explain=True))

    assert decision.matches is not None
    assert len(decision.matches) == 6
    similarities = [match.similarity for match in decision.matches]
    assert similarities == sorted(similarities, reverse=True)
    assert decision.matches[0].route == "cooking"
    assert decision.matches[0].utterance in SMALL_ROUTES["cooking"]["utterances"]
    every_utterance = {u for route in SMALL_ROUTES.values() for u in route["utterances"]}
    assert {match.utterance for match in decision.matches} <= every_utterance


# -- abstain -> default -----------------------------------------------------------------------


async def test_prompt_below_the_threshold_goes_to_the_default_route(
    make_router: MakeRouter,
) -> None:
    decision = await make_router({"default_threshold": 0.9}).decide(_request(FAR_PROMPT))

    assert decision.route == "greetings"
    assert decision.method == "default"
    assert decision.reason == "below_threshold"
    assert decision.model == "openai/gpt-4.1-nano"
    assert decision.candidates, "the semantic evidence is still reported"


async def test_route_threshold_overrides_the_router_default(make_router: MakeRouter) -> None:
    # coding keeps its own threshold (0.25) although the router default is out of reach.
    decision = await make_router({"default_threshold": 0.99}).decide(_request(CODING_PROMPT))

    assert decision.route == "coding"
    assert decision.method == "semantic"


async def test_close_runner_up_goes_to_the_default_route(make_router: MakeRouter) -> None:
    router = make_router({"default_threshold": -0.9, "min_margin": 2.0})

    decision = await router.decide(_request(COOKING_PROMPT))

    assert decision.route == "greetings"
    assert decision.method == "default"
    assert decision.reason == "close_margin"


# -- tie-breaker ------------------------------------------------------------------------------


async def test_tiebreaker_is_not_asked_when_the_semantic_match_is_clear(
    make_router: MakeRouter,
) -> None:
    tiebreaker = FakeTiebreaker("cooking")

    decision = await make_router(tiebreaker=tiebreaker).decide(_request(CODING_PROMPT))

    assert decision.method == "semantic"
    assert tiebreaker.calls == []


async def test_low_similarity_prompt_goes_to_the_tiebreaker(make_router: MakeRouter) -> None:
    tiebreaker = FakeTiebreaker("cooking")
    router = make_router({"default_threshold": 0.9}, tiebreaker=tiebreaker)

    decision = await router.decide(_request(FAR_PROMPT))

    assert decision.route == "cooking"
    assert decision.method == "llm"
    assert decision.model == "openai/gpt-4.1-mini"
    assert decision.reason == "below_threshold"
    assert len(tiebreaker.calls) == 1
    text, candidates = tiebreaker.calls[0]
    assert text == FAR_PROMPT
    assert candidates == [c.route for c in decision.candidates]


async def test_close_call_goes_to_the_tiebreaker(make_router: MakeRouter) -> None:
    tiebreaker = FakeTiebreaker("coding")
    router = make_router({"default_threshold": -0.9, "min_margin": 2.0}, tiebreaker=tiebreaker)

    decision = await router.decide(_request(COOKING_PROMPT))

    assert decision.route == "coding"
    assert decision.method == "llm"
    assert decision.reason == "close_margin"
    assert len(tiebreaker.calls) == 1


async def test_tiebreaker_answering_none_sends_the_prompt_to_the_default_route(
    make_router: MakeRouter,
) -> None:
    tiebreaker = FakeTiebreaker(None)
    router = make_router({"default_threshold": 0.9}, tiebreaker=tiebreaker)

    decision = await router.decide(_request(FAR_PROMPT))

    assert len(tiebreaker.calls) == 1
    assert decision.route == "greetings"
    assert decision.method == "default"
    assert decision.reason == "below_threshold"


async def test_tiebreaker_answering_an_unknown_route_leaves_the_prompt_undecided(
    make_router: MakeRouter,
) -> None:
    """Undecided, not "none": the ``undecided`` policy applies, here its default one."""
    router = make_router({"default_threshold": 0.9}, tiebreaker=FakeTiebreaker("weather"))

    decision = await router.decide(_request(FAR_PROMPT))

    assert router.route_set.config.undecided == "default"
    assert decision.route == "greetings"
    assert decision.method == "default"


async def test_request_with_tiebreak_false_skips_the_tiebreaker(make_router: MakeRouter) -> None:
    tiebreaker = FakeTiebreaker("cooking")
    router = make_router({"default_threshold": 0.9}, tiebreaker=tiebreaker)

    decision = await router.decide(_request(FAR_PROMPT, tiebreak=False))

    assert decision.method == "default"
    assert tiebreaker.calls == []


# -- limits and invariants --------------------------------------------------------------------


async def test_over_long_prompt_is_refused_before_any_work(make_router: MakeRouter) -> None:
    router = make_router(max_prompt_chars=50)

    with pytest.raises(PromptTooLargeError, match="51 characters; the limit is 50"):
        await router.decide(_request("x" * 51))
    with pytest.raises(PromptTooLargeError):
        await router.decide(_request("x" * 51, route="coding"))


async def test_prompt_at_the_limit_is_routed(make_router: MakeRouter) -> None:
    router = make_router(max_prompt_chars=len(CODING_PROMPT))

    decision: Decision = await router.decide(_request(CODING_PROMPT))

    assert decision.route == "coding"


def test_router_refuses_an_index_with_routes_it_does_not_define(
    tmp_path: Path, write_routes: WriteRoutes, small_index: Path, encoder: Encoder
) -> None:
    routes = copy.deepcopy(SMALL_ROUTES)
    del routes["coding"]
    folder = write_routes(tmp_path / "fewer-routes", routes, SMALL_ROUTER)

    with pytest.raises(ValueError, match="coding"):
        Router(load_route_set(folder), load_index(small_index), encoder)
