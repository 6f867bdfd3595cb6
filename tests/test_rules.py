"""Rule-based routing: rules in router.yaml, validated at load, checked before the semantic stage."""

import copy
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import CODING_PROMPT, COOKING_PROMPT, SMALL_ROUTER, SMALL_ROUTES, WriteRoutes

from service.config.routes import RouteSetError, load_route_set
from service.config.rules import Rule, RuleMatch, RuleSet, approximate_tokens
from service.encoding.encoder import Encoder
from service.index.store import load_index
from service.routing.router import Router
from service.routing.types import RouteRequest

FREE_TIER = {"name": "free-tier", "when": {"metadata": {"user_tier": "free"}}, "route": "greetings"}
LONG_PROMPTS = {"name": "long", "when": {"min_tokens": 50}, "route": "coding"}
STACK_TRACES = {
    "name": "traceback",
    "when": {"regex": r"Traceback \(most recent"},
    "route": "coding",
}

MakeRouter = Callable[[list[dict[str, Any]]], Router]


def rule_set(*rules: dict[str, Any]) -> RuleSet:
    return RuleSet([Rule.model_validate(rule) for rule in rules])


def load_with_rules(
    tmp_path: Path, write_routes: WriteRoutes, rules: list[dict[str, Any]]
) -> RouteSetError:
    folder = write_routes(
        tmp_path / "routes", copy.deepcopy(SMALL_ROUTES), {**SMALL_ROUTER, "rules": rules}
    )
    with pytest.raises(RouteSetError) as caught:
        load_route_set(folder)
    return caught.value


@pytest.fixture
def make_router(
    tmp_path: Path, write_routes: WriteRoutes, small_index: Path, encoder: Encoder
) -> Iterator[MakeRouter]:
    routers: list[Router] = []

    def make(rules: list[dict[str, Any]]) -> Router:
        folder = write_routes(
            tmp_path / f"routes-{len(routers)}",
            copy.deepcopy(SMALL_ROUTES),
            {**SMALL_ROUTER, "rules": rules},
        )
        router = Router(load_route_set(folder), load_index(small_index), encoder)
        routers.append(router)
        return router

    yield make
    for router in routers:
        router.close()


# -- loading and validation ---------------------------------------------------------------------


def test_rules_load_in_order_from_router_yaml(tmp_path: Path, write_routes: WriteRoutes) -> None:
    folder = write_routes(
        tmp_path / "routes", SMALL_ROUTES, {**SMALL_ROUTER, "rules": [FREE_TIER, LONG_PROMPTS]}
    )

    rules = load_route_set(folder).config.rules

    assert [rule.name for rule in rules] == ["free-tier", "long"]
    assert rules[0].when.metadata == {"user_tier": "free"}


def test_rule_naming_an_unknown_route_is_rejected_with_file_and_index(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    error = load_with_rules(tmp_path, write_routes, [FREE_TIER, {**LONG_PROMPTS, "route": "foo"}])

    assert str(error.problems[0]).startswith(f"{tmp_path / 'routes' / 'router.yaml'}: ")
    assert str(error.problems[0]).endswith(
        "rules.1.route: 'foo' is not a route (known: coding, cooking, greetings)"
    )


def test_rule_with_a_bad_regex_is_rejected(tmp_path: Path, write_routes: WriteRoutes) -> None:
    error = load_with_rules(
        tmp_path, write_routes, [{"when": {"regex": "(unclosed"}, "route": "coding"}]
    )

    (problem,) = error.problems
    assert problem.field == "rules.0.when.regex"
    assert "not a valid regular expression" in problem.message


def test_rule_with_an_unknown_key_is_rejected(tmp_path: Path, write_routes: WriteRoutes) -> None:
    error = load_with_rules(
        tmp_path, write_routes, [FREE_TIER, {"when": {"colour": "red"}, "route": "coding"}]
    )

    fields = {(problem.field, problem.message) for problem in error.problems}
    assert ("rules.1.when.colour", "unknown key") in fields


def test_rule_without_any_condition_is_rejected(tmp_path: Path, write_routes: WriteRoutes) -> None:
    error = load_with_rules(tmp_path, write_routes, [{"when": {}, "route": "coding"}])

    (problem,) = error.problems
    assert problem.field == "rules.0.when"
    assert "at least one condition" in problem.message


def test_rule_with_min_tokens_above_max_tokens_is_rejected(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    error = load_with_rules(
        tmp_path, write_routes, [{"when": {"min_tokens": 9, "max_tokens": 3}, "route": "coding"}]
    )

    assert "min_tokens is larger than max_tokens" in error.problems[0].message


# -- matching -----------------------------------------------------------------------------------


def test_tokens_are_characters_over_four_rounded_up() -> None:
    assert approximate_tokens("") == 0
    assert approximate_tokens("abcd") == 1
    assert approximate_tokens("abcde") == 2


def test_metadata_rule_matches_an_equal_value_or_one_of_a_list() -> None:
    rules = rule_set(
        {"when": {"metadata": {"tier": ["free", "trial"], "beta": True}}, "route": "greetings"}
    )

    assert rules.match("hi", {"tier": "trial", "beta": True}) is not None
    assert rules.match("hi", {"tier": "pro", "beta": True}) is None
    assert rules.match("hi", {"tier": "free"}) is None, "every condition must hold"
    assert rules.match("hi", {"tier": "free", "beta": 1}) is None, "true is not the number 1"


def test_length_rule_compares_approximate_tokens() -> None:
    rules = rule_set({"when": {"min_tokens": 3, "max_tokens": 5}, "route": "coding"})

    assert rules.match("x" * 8, {}) is None  # 2 tokens
    assert rules.match("x" * 12, {}) is not None  # 3 tokens
    assert rules.match("x" * 20, {}) is not None  # 5 tokens
    assert rules.match("x" * 21, {}) is None  # 6 tokens


def test_regex_rule_searches_anywhere_in_the_prompt() -> None:
    rules = rule_set(STACK_TRACES)

    assert rules.match("help!\nTraceback (most recent call last):\n  ...", {}) is not None
    assert rules.match("what is a traceback", {}) is None


def test_first_matching_rule_wins_and_is_labelled_with_its_index_and_name() -> None:
    rules = rule_set(
        {"when": {"regex": "never"}, "route": "cooking"}, FREE_TIER, {**FREE_TIER, "name": "later"}
    )

    matched = rules.match("hello", {"user_tier": "free"})

    assert matched is not None
    assert matched.index == 1
    assert matched.label == "rule 1 (free-tier)"
    assert rule_set({"when": {"regex": "x"}, "route": "coding"}).match("x", {}).label == "rule 0"  # type: ignore[union-attr]


# -- in the pipeline ----------------------------------------------------------------------------


async def test_matching_rule_routes_before_the_semantic_stage(make_router: MakeRouter) -> None:
    router = make_router([STACK_TRACES, FREE_TIER])

    decision = await router.decide(
        RouteRequest(prompt=CODING_PROMPT, metadata={"user_tier": "free"})
    )

    assert decision.route == "greetings"
    assert decision.method == "rule"
    assert decision.reason == "rule 1 (free-tier)"
    assert decision.model == "openai/gpt-4.1-nano"
    assert decision.candidates == [], "no embedding was needed"


async def test_rule_may_name_a_specific_model(make_router: MakeRouter) -> None:
    router = make_router([{**FREE_TIER, "route": "coding", "model": "openai/gpt-4.1-mini"}])

    decision = await router.decide(
        RouteRequest(prompt=COOKING_PROMPT, metadata={"user_tier": "free"})
    )

    assert decision.route == "coding"
    assert decision.model == "openai/gpt-4.1-mini"
    assert decision.fallbacks == ["openai/gpt-4.1", "anthropic/claude-sonnet-4-5"]


class CountingRuleSet(RuleSet):
    """The real rules, counting how often a request is matched against them."""

    calls = 0

    def match(self, text: str, metadata: Mapping[str, Any]) -> RuleMatch | None:
        self.calls += 1
        return super().match(text, metadata)


async def test_a_request_is_matched_against_the_rules_once(make_router: MakeRouter) -> None:
    router = make_router([{**FREE_TIER, "route": "coding", "model": "openai/gpt-4.1-mini"}])
    router.rules = counting = CountingRuleSet(router.rules.rules)

    decision = await router.decide(
        RouteRequest(prompt=COOKING_PROMPT, metadata={"user_tier": "free"})
    )

    assert (decision.method, decision.model) == ("rule", "openai/gpt-4.1-mini")
    assert counting.calls == 1


async def test_override_wins_over_rules(make_router: MakeRouter) -> None:
    router = make_router([FREE_TIER])

    decision = await router.decide(
        RouteRequest(prompt=CODING_PROMPT, route="cooking", metadata={"user_tier": "free"})
    )

    assert (decision.route, decision.method) == ("cooking", "override")


async def test_without_a_matching_rule_the_semantic_stage_decides(make_router: MakeRouter) -> None:
    router = make_router([FREE_TIER, LONG_PROMPTS])

    decision = await router.decide(
        RouteRequest(prompt=COOKING_PROMPT, metadata={"user_tier": "pro"})
    )

    assert (decision.route, decision.method) == ("cooking", "semantic")


async def test_a_chat_is_matched_on_its_last_user_message(make_router: MakeRouter) -> None:
    router = make_router([STACK_TRACES])
    request = RouteRequest(
        messages=[
            {"role": "user", "content": "Traceback (most recent call last): KeyError"},
            {"role": "assistant", "content": "Fixed."},
            {"role": "user", "content": COOKING_PROMPT},
        ]
    )

    assert (await router.decide(request)).method == "semantic"
