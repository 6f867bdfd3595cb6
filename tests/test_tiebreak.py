"""The LLM tie-breaker: a small model picks one candidate route or none, validated, timed, cached."""

import litellm
import pytest
from llm_fixtures import SLOW_SECONDS, ScriptedCall, fake_fixture, fake_server_fixture  # noqa: F401

from service.completion.providers import Endpoints
from service.config.routes import Route, TiebreakerConfig
from service.routing.router import NO_ROUTE
from service.routing.tiebreak import LLMTiebreaker, choice_schema, parse_choice

NAMES = ("math", "cooking", "code-review")


def route(name, description):
    return Route(name=name, description=description, model="openai/ok-x", utterances=("x",))


CANDIDATES = [
    route("math", "Arithmetic, algebra and calculus."),
    route("cooking", "Recipes and kitchen techniques."),
    route("code-review", "Reviewing pull requests."),
]
PROMPT = "How many grams of flour are in three cups?"
TIEBREAKER = "openai/gpt-4.1-nano"


@pytest.fixture(autouse=True)
def provider_keys(monkeypatch):
    """The tie-breaker's real model name passes the key check; mock calls never send it."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-sent")


def tiebreaker(answer, **config):
    """A tie-breaker whose model answers ``answer`` through litellm's mock_response."""
    call = ScriptedCall({TIEBREAKER: answer})
    options = {"model": TIEBREAKER, "timeout_s": 2, **config}
    return LLMTiebreaker(TiebreakerConfig(**options), Endpoints(), call=call), call


# parse_choice


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"route": "math"}', "math"),
        ('{"route": " cooking "}', "cooking"),
        ('"math"', "math"),
        ('```json\n{"route": "code-review"}\n```', "code-review"),
        ('{"route": "none"}', NO_ROUTE),
    ],
)
def test_parse_choice_reads_the_json_answer(content, expected):
    assert parse_choice(content, NAMES) == expected


@pytest.mark.parametrize(
    "content",
    ['{"route": "physics"}', '{"route": "Math"}', '{"choice": "maths"}', "[1, 2]", "42"],
)
def test_parse_choice_rejects_a_name_outside_the_candidates(content):
    assert parse_choice(content, NAMES) is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("I would pick math for this one.", "math"),
        ("The best fit is code-review.", "code-review"),
        ('{"category": "cooking"}', "cooking"),
    ],
)
def test_parse_choice_understands_a_reply_naming_exactly_one_candidate(content, expected):
    assert parse_choice(content, NAMES) == expected


@pytest.mark.parametrize(
    "content",
    ["Either math or cooking would do.", "", None, "no idea", "mathematics", "code-reviewer"],
)
def test_parse_choice_gives_none_when_the_reply_names_no_single_candidate(content):
    assert parse_choice(content, NAMES) is None


def test_parse_choice_does_not_read_a_name_inside_a_longer_name():
    assert parse_choice("code-review", ("code", "code-review")) == "code-review"


# choice_schema


def test_choice_schema_allows_exactly_the_candidates_and_none():
    schema = choice_schema(["math", "cooking"])
    assert schema["type"] == "json_schema"
    body = schema["json_schema"]["schema"]
    assert body["properties"]["route"]["enum"] == ["math", "cooking", NO_ROUTE]
    assert body["required"] == ["route"]
    assert body["additionalProperties"] is False


# LLMTiebreaker


async def test_the_model_s_valid_choice_is_returned():
    breaker, _ = tiebreaker('{"route": "math"}')
    assert await breaker.choose(PROMPT, CANDIDATES) == "math"
    assert breaker.outcomes["picked"] == 1


async def test_none_from_the_model_means_no_candidate_fits():
    breaker, _ = tiebreaker('{"route": "none"}')
    assert await breaker.choose(PROMPT, CANDIDATES) == NO_ROUTE
    assert breaker.outcomes["none"] == 1


async def test_an_answer_outside_the_candidates_is_no_decision():
    breaker, _ = tiebreaker('{"route": "astrology"}')
    assert await breaker.choose(PROMPT, CANDIDATES) is None
    assert breaker.outcomes["invalid"] == 1


async def test_a_provider_error_is_no_decision():
    error = litellm.InternalServerError("boom", llm_provider="openai", model="gpt-4.1-nano")
    breaker, _ = tiebreaker(error)
    assert await breaker.choose(PROMPT, CANDIDATES) is None
    assert breaker.outcomes["error"] == 1


async def test_the_request_constrains_the_answer_to_the_candidates():
    breaker, call = tiebreaker('{"route": "math"}')
    await breaker.choose(PROMPT, CANDIDATES)
    [sent] = call.calls
    assert sent["model"] == TIEBREAKER
    assert sent["response_format"] == choice_schema(["math", "cooking", "code-review"])
    assert sent["temperature"] == 0
    assert sent["timeout"] == 2
    prompt = sent["messages"][-1]["content"]
    assert PROMPT in prompt
    for candidate in CANDIDATES:
        assert f"{candidate.name}: {candidate.description}" in prompt


async def test_only_the_first_max_candidates_are_offered():
    breaker, call = tiebreaker('{"route": "code-review"}', max_candidates=2)
    assert await breaker.choose(PROMPT, CANDIDATES) is None, "code-review was not offered"
    enum = call.calls[0]["response_format"]["json_schema"]["schema"]["properties"]["route"]
    assert enum["enum"] == ["math", "cooking", NO_ROUTE]


async def test_a_repeated_prompt_is_answered_from_the_cache():
    breaker, call = tiebreaker('{"route": "math"}')
    assert await breaker.choose(PROMPT, CANDIDATES) == "math"
    assert await breaker.choose(f"  {PROMPT.upper()}\n ", CANDIDATES) == "math"
    assert len(call.calls) == 1
    assert breaker.outcomes == {"picked": 1, "cache_hit": 1}


async def test_a_cached_none_is_still_none():
    breaker, call = tiebreaker('{"route": "none"}')
    assert await breaker.choose(PROMPT, CANDIDATES) == NO_ROUTE
    assert await breaker.choose(PROMPT, CANDIDATES) == NO_ROUTE
    assert len(call.calls) == 1


async def test_other_candidates_are_a_different_question():
    breaker, call = tiebreaker('{"route": "math"}')
    await breaker.choose(PROMPT, CANDIDATES)
    await breaker.choose(PROMPT, CANDIDATES[:2])
    assert len(call.calls) == 2


async def test_a_failed_answer_is_not_cached():
    breaker, call = tiebreaker('{"route": "astrology"}')
    await breaker.choose(PROMPT, CANDIDATES)
    await breaker.choose(PROMPT, CANDIDATES)
    assert len(call.calls) == 2


async def test_cache_size_zero_disables_the_cache():
    breaker, call = tiebreaker('{"route": "math"}', cache_size=0)
    await breaker.choose(PROMPT, CANDIDATES)
    await breaker.choose(PROMPT, CANDIDATES)
    assert len(call.calls) == 2


async def test_the_cache_forgets_the_least_recently_used_prompt():
    breaker, call = tiebreaker('{"route": "math"}', cache_size=2)
    for prompt in ("first", "second", "first", "third", "first", "second"):
        await breaker.choose(prompt, CANDIDATES)
    assert [c["messages"][-1]["content"].split('"""')[1].strip() for c in call.calls] == [
        "first",
        "second",
        "third",
        "second",
    ]


async def test_a_missing_api_key_skips_the_call(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    breaker, call = tiebreaker('{"route": "math"}')
    assert await breaker.choose(PROMPT, CANDIDATES) is None
    assert call.calls == []
    assert breaker.outcomes["missing_api_key"] == 1


async def test_a_slow_model_is_abandoned_at_the_timeout_with_no_decision(fake):
    config = TiebreakerConfig(model="openai/slow-tb", timeout_s=0.5)
    breaker = LLMTiebreaker(config, Endpoints(override_api_base=fake.api_base))
    assert await breaker.choose(PROMPT, CANDIDATES) is None
    assert breaker.outcomes["timeout"] == 1
    assert fake.models_called() == ["slow-tb"]
    assert fake.wait_abandoned(["slow-tb"]), "the call was cut at the timeout, not waited out"


@pytest.mark.parametrize("model", ["openai/e500-tb", "openai/e429-tb"])
async def test_a_failing_tiebreaker_is_asked_once_not_retried(fake, model):
    """One call per routed prompt, as every completion attempt: retrying a failing (or
    rate-limited) tie-breaker only adds latency to routing and load to the provider.

    Fails today: service/routing/tiebreak.py passes no ``num_retries`` to litellm, so the OpenAI
    client's default of two retries (with backoff, honouring Retry-After) applies.
    """
    config = TiebreakerConfig(model=model, timeout_s=4)
    breaker = LLMTiebreaker(config, Endpoints(override_api_base=fake.api_base))
    assert await breaker.choose(PROMPT, CANDIDATES) is None
    assert breaker.outcomes["error"] == 1
    assert fake.models_called() == [model.removeprefix("openai/")]


async def test_a_real_provider_round_trip_sends_the_schema(fake):
    config = TiebreakerConfig(model="openai/ok-tb", timeout_s=2)
    breaker = LLMTiebreaker(config, Endpoints(override_api_base=fake.api_base))
    assert await breaker.choose(PROMPT, CANDIDATES) is None, "the fake answers prose, no name"
    [sent] = fake.requests
    assert sent["response_format"] == choice_schema(["math", "cooking", "code-review"])
    assert breaker.outcomes["invalid"] == 1
