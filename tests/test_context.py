"""Conversation context: earlier user turns as weaker evidence, and sticky conversation routes."""

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CODING_PROMPT, COOKING_PROMPT, SMALL_ROUTER, SMALL_ROUTES, WriteRoutes

from service.encoding.encoder import Encoder
from service.index.store import load_index
from service.routing import context
from service.routing.router import Router
from service.routing.types import RouteRequest
from service.tools import dynamic_eval

MakeRouter = Callable[..., Router]
# Follow-ups that say little on their own; the earlier turn tells what they are about.
COOKING_CHAT = [
    "give me a recipe for vegetarian lasagna",
    "can I make it the day before and keep it in the fridge?",
    "and how long does it take to reheat?",
]
CODING_CHAT = [
    "write a python function that parses ISO dates",
    "can you make it shorter?",
    "and the other one too?",
]


@pytest.fixture
def make_router(
    tmp_path: Path, write_routes: WriteRoutes, small_index: Path, encoder: Encoder
) -> Iterator[MakeRouter]:
    """``make_router(**router_yaml_changes)``: a Router over the small (knn) index."""
    routers: list[Router] = []

    def make(**policy: Any) -> Router:
        folder = write_routes(
            tmp_path / f"routes-{len(routers)}",
            copy.deepcopy(SMALL_ROUTES),
            {**SMALL_ROUTER, **policy},
        )
        router = Router(load_route_set_from(folder), load_index(small_index), encoder)
        routers.append(router)
        return router

    yield make
    for router in routers:
        router.close()


def load_route_set_from(folder: Path) -> Any:
    from service.config.routes import load_route_set

    return load_route_set(folder)


def chat(*user_turns: str, conversation_id: str | None = None) -> RouteRequest:
    messages: list[dict[str, str]] = []
    for turn in user_turns:
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": "ok"}]
    return RouteRequest.model_validate(
        {"messages": messages[:-1], "conversation_id": conversation_id, "tiebreak": False}
    )


# -- the context vector -------------------------------------------------------------------------


def test_combined_vector_weighs_the_latest_turn_most_and_has_unit_norm() -> None:
    earlier, latest = np.eye(2, dtype=np.float32)

    combined = context.combine(np.stack([earlier, latest]))

    assert float(np.linalg.norm(combined)) == pytest.approx(1.0)
    assert combined[1] / combined[0] == pytest.approx(0.7 / 0.3)


def test_a_single_turn_is_its_own_vector() -> None:
    vector = np.array([[0.6, 0.8]], dtype=np.float32)

    assert np.array_equal(context.combine(vector), vector[0])


def test_only_the_latest_turns_are_used() -> None:
    turns = ["a", "b", "c", "d", "e"]

    assert context.context_turns(turns) == ["c", "d", "e"]


def test_only_user_turns_with_text_are_context() -> None:
    request = RouteRequest.model_validate(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "reply"},
                {"role": "user", "content": "  "},
                {"role": "user", "content": "second"},
            ]
        }
    )

    assert request.user_turns() == ["first", "second"]


async def test_a_vague_follow_up_is_routed_with_its_earlier_turn(make_router: MakeRouter) -> None:
    router = make_router()

    for last in range(1, len(COOKING_CHAT)):
        alone = await router.decide(RouteRequest(prompt=COOKING_CHAT[last]))
        in_context = await router.decide(chat(*COOKING_CHAT[: last + 1]))

        assert in_context.route == "cooking", COOKING_CHAT[last]
        assert in_context.score is not None and alone.score is not None
        assert in_context.score > alone.score, "the earlier turn adds evidence"


# -- sticky conversations -----------------------------------------------------------------------


async def test_a_conversation_stays_on_its_route_unless_the_new_turn_is_clear(
    make_router: MakeRouter,
) -> None:
    router = make_router(stickiness=1.0)  # no knn margin reaches 1.0: never clear enough
    first = await router.decide(RouteRequest(prompt=CODING_PROMPT, conversation_id="c1"))

    second = await router.decide(RouteRequest(prompt=COOKING_PROMPT, conversation_id="c1"))

    assert first.route == "coding"
    assert second.route == "coding"
    assert second.method == "context"
    assert second.model == "openai/gpt-4.1"
    assert second.reason is not None and "stays on 'coding'" in second.reason
    assert second.candidates[0].route == "cooking", "the semantic evidence is still reported"


async def test_a_weak_follow_up_stays_on_the_conversation_s_route(make_router: MakeRouter) -> None:
    router = make_router()  # the default stickiness
    decisions = [
        await router.decide(chat(*CODING_CHAT[: last + 1], conversation_id="c1"))
        for last in range(len(CODING_CHAT))
    ]

    assert [d.route for d in decisions] == ["coding"] * 3
    assert decisions[0].method == "semantic"
    assert {d.method for d in decisions[1:]} == {"context"}, "alone, they go to the default"


async def test_a_clear_new_turn_moves_the_conversation(make_router: MakeRouter) -> None:
    router = make_router(stickiness=0.0)
    await router.decide(RouteRequest(prompt=CODING_PROMPT, conversation_id="c1"))

    moved = await router.decide(RouteRequest(prompt=COOKING_PROMPT, conversation_id="c1"))
    again = await router.decide(RouteRequest(prompt="hello there", conversation_id="c1"))

    assert (moved.route, moved.method) == ("cooking", "semantic")
    assert await router.state.conversation_route("c1") == again.route


async def test_conversations_do_not_share_routes(make_router: MakeRouter) -> None:
    router = make_router(stickiness=1.0)
    await router.decide(RouteRequest(prompt=CODING_PROMPT, conversation_id="c1"))

    other = await router.decide(RouteRequest(prompt=COOKING_PROMPT, conversation_id="c2"))

    assert (other.route, other.method) == ("cooking", "semantic")


async def test_override_and_rules_are_never_overruled_by_stickiness(
    make_router: MakeRouter,
) -> None:
    rule = {"when": {"metadata": {"plan": "free"}}, "route": "greetings"}
    router = make_router(stickiness=1.0, rules=[rule])
    await router.decide(RouteRequest(prompt=CODING_PROMPT, conversation_id="c1"))

    forced = await router.decide(
        RouteRequest(prompt=CODING_PROMPT, route="cooking", conversation_id="c1")
    )
    ruled = await router.decide(
        RouteRequest(prompt=CODING_PROMPT, metadata={"plan": "free"}, conversation_id="c1")
    )

    assert (forced.route, forced.method) == ("cooking", "override")
    assert (ruled.route, ruled.method) == ("greetings", "rule")


# -- measured -----------------------------------------------------------------------------------


async def test_context_routes_follow_ups_better_than_the_latest_turn_alone(
    make_router: MakeRouter,
) -> None:
    conversations = [
        [(text, "cooking") for text in COOKING_CHAT],
        [(text, "coding") for text in CODING_CHAT],
        [("hi, nice to meet you", "greetings"), ("what spices go in a curry", "cooking")],
    ]

    latest, with_context, sticky = await dynamic_eval.evaluate_multiturn(
        make_router(stickiness=0.05), conversations
    )

    assert latest.mode == "latest turn only" and latest.turns == 8
    assert with_context.accuracy >= latest.accuracy
    assert sticky.accuracy > latest.accuracy
    assert sticky.accuracy == 1.0, "a clear change of topic still moves the conversation"
