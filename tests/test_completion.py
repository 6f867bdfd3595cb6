"""The fallback chain: one attempt per model, in order, inside one deadline, every attempt on record.

Fast cases use litellm's own ``mock_response``; fault injection uses the fake provider server.
"""

import functools

import litellm
import pytest
from llm_fixtures import (  # noqa: F401
    SLOW_SECONDS,
    ScriptedCall,
    fake_fixture,
    fake_server_fixture,
    user,
)

from service.completion.chain import Completer, CompletionJob, content_of, model_chain
from service.completion.providers import Endpoints
from service.config.routes import CompletionPolicy, ModelParams

FAST = CompletionPolicy(attempt_timeout_s=0.5, deadline_s=5)


@pytest.fixture(autouse=True)
def provider_keys(monkeypatch):
    """Real model names pass the key check; litellm's mock_response never sends the key."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-sent")


def on_fake(fake, policy=FAST):
    """A completer whose every model is served by the fake provider."""
    return Completer(Endpoints(override_api_base=fake.api_base), policy)


def job(*models, escalation=None, **params):
    primary, *fallbacks = models
    return CompletionJob(
        messages=user("What is the capital of France?"),
        models=model_chain(primary, fallbacks, escalation),
        params=params,
    )


def text_of(result):
    return content_of(result.response)[0]


# The chain's order


def test_the_chain_is_model_then_fallbacks_then_escalation():
    assert model_chain("a", ["b", "c"], "d") == [
        ("a", "primary"),
        ("b", "fallback"),
        ("c", "fallback"),
        ("d", "escalation"),
    ]


def test_the_chain_tries_each_model_once_in_its_first_role():
    assert model_chain("a", ["b", "a", "b"], "a") == [("a", "primary"), ("b", "fallback")]


def test_the_chain_without_fallbacks_or_escalation_is_the_model_alone():
    assert model_chain("a", [], None) == [("a", "primary")]


# Success, with litellm's mock_response


async def test_the_primary_answer_is_returned_with_one_ok_attempt():
    call = functools.partial(litellm.acompletion, mock_response="Paris.")
    result = await Completer(Endpoints(), FAST, call=call).run(job("openai/gpt-4.1-mini"))
    assert result.ok
    assert result.model == "openai/gpt-4.1-mini"
    assert text_of(result) == "Paris."
    [attempt] = result.attempts
    assert (attempt.model, attempt.role, attempt.outcome) == (
        "openai/gpt-4.1-mini",
        "primary",
        "ok",
    )
    assert attempt.error_type is None
    assert attempt.latency_ms >= 0
    assert attempt.usage is not None and attempt.usage["total_tokens"] > 0


async def test_a_priced_model_reports_a_positive_cost():
    call = functools.partial(litellm.acompletion, mock_response="Paris.")
    result = await Completer(Endpoints(), FAST, call=call).run(job("openai/gpt-4.1-mini"))
    cost = result.attempts[0].cost_usd
    assert isinstance(cost, float)
    assert cost > 0


async def test_an_unpriced_model_reports_no_cost():
    call = functools.partial(litellm.acompletion, mock_response="Paris.")
    result = await Completer(Endpoints(), FAST, call=call).run(job("openai/not-in-the-cost-map"))
    assert result.ok
    assert result.attempts[0].cost_usd is None


async def test_a_raised_litellm_error_falls_back_and_names_its_type():
    error = litellm.InternalServerError("boom", llm_provider="openai", model="gpt-4.1")
    call = ScriptedCall({"openai/gpt-4.1": error, "openai/gpt-4.1-mini": "Paris."})
    result = await Completer(Endpoints(), FAST, call=call).run(
        job("openai/gpt-4.1", "openai/gpt-4.1-mini")
    )
    assert result.model == "openai/gpt-4.1-mini"
    assert [(a.outcome, a.error_type) for a in result.attempts] == [
        ("error", "InternalServerError"),
        ("ok", None),
    ]
    assert "boom" in result.attempts[0].message


async def test_a_litellm_timeout_error_is_recorded_as_a_timeout():
    error = litellm.Timeout("took too long", model="gpt-4.1", llm_provider="openai")
    call = ScriptedCall({"openai/gpt-4.1": error, "openai/gpt-4.1-mini": "Paris."})
    result = await Completer(Endpoints(), FAST, call=call).run(
        job("openai/gpt-4.1", "openai/gpt-4.1-mini")
    )
    assert (result.attempts[0].outcome, result.attempts[0].error_type) == ("timeout", "Timeout")
    assert result.model == "openai/gpt-4.1-mini"


async def test_the_attempt_timeout_and_retry_policy_are_passed_to_litellm():
    call = ScriptedCall({"openai/gpt-4.1-mini": "Paris."})
    policy = CompletionPolicy(attempt_timeout_s=7, deadline_s=60, num_retries=2)
    await Completer(Endpoints(), policy, call=call).run(job("openai/gpt-4.1-mini"))
    [sent] = call.calls
    assert sent["timeout"] == pytest.approx(7)
    assert sent["num_retries"] == 2


# Missing credentials


async def test_a_missing_api_key_skips_the_model_and_tries_the_next(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("SEMROUTE_TEST_KEY", "sk-test")
    endpoints = Endpoints(
        models={"openai/gpt-4.1-mini": ModelParams(api_key_env="SEMROUTE_TEST_KEY")}
    )
    call = ScriptedCall({"openai/gpt-4.1": "never sent", "openai/gpt-4.1-mini": "Paris."})
    result = await Completer(endpoints, FAST, call=call).run(
        job("openai/gpt-4.1", "openai/gpt-4.1-mini")
    )
    skipped, answered = result.attempts
    assert (skipped.model, skipped.outcome, skipped.error_type) == (
        "openai/gpt-4.1",
        "skipped",
        "missing_api_key",
    )
    assert "OPENAI_API_KEY" in skipped.message
    assert answered.outcome == "ok"
    assert call.models() == ["openai/gpt-4.1-mini"], "the skipped model is never called"


# Fault injection with the fake provider: every failure leads to the next model

FAILURES = [
    pytest.param("openai/slow-a", {}, "timeout", {"Timeout"}, id="timeout"),
    pytest.param("openai/e500-a", {}, "error", {"InternalServerError"}, id="http-500"),
    pytest.param("openai/e429-a", {}, "error", {"RateLimitError"}, id="http-429"),
    pytest.param(
        "openai/garbage-a",
        {},
        "error",
        {"InternalServerError", "APIError", "APIConnectionError"},
        id="garbage-json",
    ),
    pytest.param(
        "openai/drop-a",
        {},
        "error",
        {"InternalServerError", "APIError", "APIConnectionError"},
        id="dropped-connection",
    ),
    pytest.param("openai/empty-a", {}, "bad_answer", {"empty"}, id="empty-content"),
    pytest.param("openai/blank-a", {}, "bad_answer", {"empty"}, id="whitespace-content"),
    pytest.param("openai/cut-a", {}, "bad_answer", {"truncated"}, id="cut-off-by-length"),
    pytest.param(
        "openai/text-a",
        {"response_format": {"type": "json_object"}},
        "bad_answer",
        {"invalid_json"},
        id="prose-when-json-was-asked",
    ),
]


@pytest.mark.parametrize(("failing", "params", "outcome", "error_types"), FAILURES)
async def test_a_failing_primary_falls_back_to_the_next_model(
    fake, failing, params, outcome, error_types
):
    result = await on_fake(fake).run(job(failing, "openai/json-next", **params))

    assert result.ok
    assert result.model == "openai/json-next"
    assert text_of(result) == '{"answer": 42}'
    failed, answered = result.attempts
    assert (failed.model, failed.role, failed.outcome) == (failing, "primary", outcome)
    assert failed.error_type in error_types
    assert (answered.model, answered.role, answered.outcome) == (
        "openai/json-next",
        "fallback",
        "ok",
    )
    assert fake.models_called() == [failing.removeprefix("openai/"), "json-next"]
    if outcome == "timeout":
        assert fake.wait_abandoned([failing.removeprefix("openai/")]), "cut at the timeout"


async def test_a_provider_error_keeps_a_short_message(fake):
    result = await on_fake(fake).run(job("openai/e500-a", "openai/ok-b"))
    assert "internal failure" in result.attempts[0].message


async def test_a_rejected_answer_still_reports_its_usage(fake):
    result = await on_fake(fake).run(job("openai/empty-a", "openai/ok-b"))
    assert result.attempts[0].usage == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
    }


async def test_a_short_reply_cut_off_by_length_is_kept_when_the_policy_allows_it(fake):
    policy = CompletionPolicy(attempt_timeout_s=0.5, deadline_s=5, min_truncated_chars=2)
    result = await on_fake(fake, policy).run(job("openai/cut-a", "openai/ok-b"))
    assert result.model == "openai/cut-a"
    assert content_of(result.response)[:2] == ("Th", "length")


async def test_valid_json_when_json_was_asked_is_accepted(fake):
    result = await on_fake(fake).run(
        job("openai/json-a", "openai/ok-b", response_format={"type": "json_object"})
    )
    assert result.model == "openai/json-a"
    assert len(result.attempts) == 1


async def test_the_chain_runs_model_fallbacks_and_escalation_in_order_each_once(fake):
    result = await on_fake(fake).run(
        job("openai/e500-a", "openai/e429-b", "openai/e500-a", escalation="openai/ok-c")
    )
    assert result.model == "openai/ok-c"
    assert [(a.model, a.role) for a in result.attempts] == [
        ("openai/e500-a", "primary"),
        ("openai/e429-b", "fallback"),
        ("openai/ok-c", "escalation"),
    ]
    assert fake.models_called() == ["e500-a", "e429-b", "ok-c"]


async def test_the_chain_stops_at_the_first_good_answer(fake):
    result = await on_fake(fake).run(job("openai/ok-a", "openai/ok-b", escalation="openai/ok-c"))
    assert result.model == "openai/ok-a"
    assert fake.models_called() == ["ok-a"]


async def test_when_every_model_fails_the_result_is_not_ok_and_lists_every_attempt(fake):
    result = await on_fake(fake).run(
        job("openai/e500-a", "openai/garbage-b", "openai/blank-c", escalation="openai/cut-d")
    )
    assert not result.ok
    assert result.response is None and result.model is None
    assert not result.deadline_exceeded
    assert [(a.model, a.role, a.outcome) for a in result.attempts] == [
        ("openai/e500-a", "primary", "error"),
        ("openai/garbage-b", "fallback", "error"),
        ("openai/blank-c", "fallback", "bad_answer"),
        ("openai/cut-d", "escalation", "bad_answer"),
    ]
    assert all(a.error_type for a in result.attempts)


async def test_the_overall_deadline_stops_the_chain_before_every_slow_model_is_tried(fake):
    policy = CompletionPolicy(attempt_timeout_s=0.5, deadline_s=1.25)
    slow = [f"openai/slow-{n}" for n in range(1, 6)]
    result = await on_fake(fake, policy).run(job(*slow))

    assert not result.ok
    assert result.deadline_exceeded
    assert [a.outcome for a in result.attempts] == ["timeout"] * 3
    assert fake.models_called() == ["slow-1", "slow-2", "slow-3"], "the chain ends at the deadline"
    assert fake.wait_abandoned(["slow-1", "slow-2", "slow-3"]), "each call cut, not waited out"


async def test_running_out_of_models_before_the_deadline_is_not_a_deadline_failure(fake):
    policy = CompletionPolicy(attempt_timeout_s=0.3, deadline_s=5)
    result = await on_fake(fake, policy).run(job("openai/slow-a"))
    assert [a.outcome for a in result.attempts] == ["timeout"]
    assert not result.deadline_exceeded


async def test_generation_params_reach_the_provider(fake):
    await on_fake(fake).run(
        job(
            "openai/json-a",
            max_tokens=33,
            temperature=0.2,
            stop=["END"],
            response_format={"type": "json_object"},
        )
    )
    [sent] = fake.requests
    assert sent["model"] == "json-a"
    assert sent["max_tokens"] == 33
    assert sent["temperature"] == 0.2
    assert sent["stop"] == ["END"]
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["messages"] == user("What is the capital of France?")


# Reviewer


def reviewed_job(reviewer):
    return CompletionJob(
        messages=user("What is the capital of France?"),
        models=model_chain("openai/gpt-4.1-mini", [], None),
        reviewer=reviewer,
    )


async def test_a_successful_review_replaces_the_answer_and_both_calls_are_on_record():
    call = ScriptedCall({"openai/gpt-4.1-mini": "Lyon, I think.", "openai/gpt-4.1": "Paris."})
    result = await Completer(Endpoints(), FAST, call=call).run(reviewed_job("openai/gpt-4.1"))

    assert result.ok and result.reviewed is True
    assert result.review_note is None
    assert text_of(result) == "Paris."
    assert result.model == "openai/gpt-4.1"
    assert [(a.model, a.role, a.outcome) for a in result.attempts] == [
        ("openai/gpt-4.1-mini", "primary", "ok"),
        ("openai/gpt-4.1", "review", "ok"),
    ]
    review_request = call.calls[1]["messages"][-1]["content"]
    assert "What is the capital of France?" in review_request
    assert "Lyon, I think." in review_request


async def test_a_failing_reviewer_keeps_the_draft_and_says_why():
    error = litellm.InternalServerError("boom", llm_provider="openai", model="gpt-4.1")
    call = ScriptedCall({"openai/gpt-4.1-mini": "Paris.", "openai/gpt-4.1": error})
    result = await Completer(Endpoints(), FAST, call=call).run(reviewed_job("openai/gpt-4.1"))

    assert result.ok and result.reviewed is False
    assert text_of(result) == "Paris."
    assert result.model == "openai/gpt-4.1-mini"
    assert [(a.role, a.outcome) for a in result.attempts] == [
        ("primary", "ok"),
        ("review", "error"),
    ]
    assert "openai/gpt-4.1" in result.review_note
    assert "InternalServerError" in result.review_note


async def test_an_empty_review_keeps_the_draft():
    call = ScriptedCall({"openai/gpt-4.1-mini": "Paris.", "openai/gpt-4.1": "  "})
    result = await Completer(Endpoints(), FAST, call=call).run(reviewed_job("openai/gpt-4.1"))
    assert result.reviewed is False
    assert text_of(result) == "Paris."
    assert result.attempts[-1].error_type == "empty"


async def test_no_review_when_every_model_failed():
    error = litellm.InternalServerError("boom", llm_provider="openai", model="gpt-4.1-mini")
    call = ScriptedCall({"openai/gpt-4.1-mini": error, "openai/gpt-4.1": "Paris."})
    result = await Completer(Endpoints(), FAST, call=call).run(reviewed_job("openai/gpt-4.1"))
    assert not result.ok
    assert result.reviewed is None
    assert call.models() == ["openai/gpt-4.1-mini"]
