"""POST /complete (and the tie-breaker in POST /route) through the real app.

Every model of the route set lives on the fake provider server; its name picks its
behaviour (ok-, e500-, slow-, ...), so each route below is one scenario.
"""

import pytest
from llm_fixtures import (  # noqa: F401
    API_ROUTER,
    API_ROUTES,
    ScriptedCall,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)

DEADLINE_S = API_ROUTER["completion"]["deadline_s"]
UNSURE_ROUTER = {**API_ROUTER, "default_threshold": 0.95}
"""No semantic match clears this threshold unless the prompt is an utterance itself."""
MATHS_QUESTION = "can you help me with my algebra homework about quadratic equations"
TIEBREAKER = API_ROUTER["tiebreaker"]["model"]


def with_route(name, **changes):
    return {**API_ROUTES, name: {**API_ROUTES[name], **changes}}


def outcomes(attempts):
    return [(a["model"], a["role"], a["outcome"], a["error_type"]) for a in attempts]


# Answers


def test_complete_returns_the_answer_and_the_record_of_how_it_was_obtained(make_client):
    response = make_client().post("/complete", json={"prompt": "what is 12 times 7"})
    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == "answer from ok-math"
    assert body["model"] == "openai/ok-math"
    assert body["finish_reason"] == "stop"
    assert outcomes(body["attempts"]) == [("openai/ok-math", "primary", "ok", None)]
    assert body["decision"]["route"] == "math"
    assert body["decision"]["method"] == "semantic"
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert body["cost_usd"] is None, "the fake's models have no price"
    assert body["latency_ms"] > 0
    assert body["reviewed"] is None


def test_a_500_from_the_route_model_falls_back_to_its_fallback(make_client):
    response = make_client().post(
        "/complete", json={"prompt": "give me a recipe for vegetarian lasagna"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["decision"]["route"] == "cooking"
    assert body["decision"]["model"] == "openai/e500-cook"
    assert body["model"] == "openai/ok-cook"
    assert body["answer"] == "answer from ok-cook"
    assert outcomes(body["attempts"]) == [
        ("openai/e500-cook", "primary", "error", "InternalServerError"),
        ("openai/ok-cook", "fallback", "ok", None),
    ]


def test_tokens_of_a_rejected_answer_count_in_usage(make_client):
    body = make_client().post("/complete", json={"prompt": "hi", "route": "blanks"}).json()
    assert outcomes(body["attempts"]) == [
        ("openai/blank-t", "primary", "bad_answer", "empty"),
        ("openai/ok-t", "fallback", "ok", None),
    ]
    assert body["usage"] == {"prompt_tokens": 22, "completion_tokens": 14, "total_tokens": 36}


def test_a_priced_model_reports_its_cost(make_client):
    client = make_client(
        routes=with_route("math", model="openai/gpt-4.1-mini"),
        llm_call=ScriptedCall({"openai/gpt-4.1-mini": "84"}),
    )
    body = client.post("/complete", json={"prompt": "what is 12 times 7"}).json()
    assert body["answer"] == "84"
    assert isinstance(body["cost_usd"], float)
    assert body["cost_usd"] > 0
    assert body["cost_usd"] == pytest.approx(body["attempts"][0]["cost_usd"])


def test_generation_params_reach_the_provider(make_client, fake):
    response = make_client().post(
        "/complete",
        json={
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "what is 12 times 7"},
            ],
            "max_tokens": 5,
            "temperature": 0.3,
            "top_p": 0.9,
            "stop": ["END"],
            "seed": 7,
        },
    )
    assert response.status_code == 200
    [sent] = fake.requests
    assert sent["model"] == "ok-math"
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (5, 0.3, 0.9)
    assert (sent["stop"], sent["seed"]) == (["END"], 7)
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_prose_when_json_was_asked_is_rejected(make_client):
    response = make_client().post(
        "/complete",
        json={"prompt": "hi", "route": "math", "response_format": {"type": "json_object"}},
    )
    assert response.status_code == 502
    assert outcomes(response.json()["error"]["attempts"]) == [
        ("openai/ok-math", "primary", "bad_answer", "invalid_json")
    ]


def test_a_reviewer_s_answer_replaces_the_draft(make_client):
    client = make_client(routes=with_route("math", reviewer="openai/json-rev"))
    body = client.post("/complete", json={"prompt": "what is 12 times 7"}).json()
    assert body["answer"] == '{"answer": 42}'
    assert body["model"] == "openai/json-rev"
    assert body["reviewed"] is True
    assert [(a["model"], a["role"]) for a in body["attempts"]] == [
        ("openai/ok-math", "primary"),
        ("openai/json-rev", "review"),
    ]
    assert body["usage"]["total_tokens"] == 36


def test_a_failing_reviewer_keeps_the_draft(make_client):
    client = make_client(routes=with_route("math", reviewer="openai/e500-rev"))
    body = client.post("/complete", json={"prompt": "what is 12 times 7"}).json()
    assert body["answer"] == "answer from ok-math"
    assert body["model"] == "openai/ok-math"
    assert body["reviewed"] is False
    assert "openai/e500-rev" in body["review_note"]


# Failures


def test_when_every_model_fails_the_answer_is_a_502_listing_every_attempt(make_client):
    response = make_client().post("/complete", json={"prompt": "hi", "route": "broken"})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "all_models_failed"
    assert [(m, role, outcome) for m, role, outcome, _ in outcomes(error["attempts"])] == [
        ("openai/e500-b", "primary", "error"),
        ("openai/garbage-b", "fallback", "error"),
        ("openai/empty-b", "fallback", "bad_answer"),
    ]
    for model in ("openai/e500-b", "openai/garbage-b", "openai/empty-b"):
        assert model in error["message"]
    assert "Traceback" not in response.text


def test_slow_models_beyond_the_deadline_give_a_504_at_the_deadline(make_client, fake):
    client = make_client()
    response = client.post("/complete", json={"prompt": "hi", "route": "sluggish"})

    assert response.status_code == 504
    error = response.json()["error"]
    assert error["type"] == "deadline_exceeded"
    assert f"{DEADLINE_S:g}s" in error["message"]
    assert [a["outcome"] for a in error["attempts"]] == ["timeout"] * 3
    assert fake.models_called() == ["slow-1", "slow-2", "slow-3"], "slow-4 and slow-5 untried"
    assert fake.wait_abandoned(["slow-1", "slow-2", "slow-3"]), "each call cut, not waited out"


REAL_MODEL_ROUTES = {
    name: {**route, "model": "openai/gpt-4.1", "fallbacks": ["anthropic/claude-sonnet-4-5"]}
    for name, route in API_ROUTES.items()
}
KEYLESS_ROUTER = {"default_route": "chitchat"}


def test_missing_provider_keys_give_a_502_naming_the_variables(make_client, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    client = make_client(routes=REAL_MODEL_ROUTES, router=KEYLESS_ROUTER, llm_api_base=None)
    response = client.post("/complete", json={"prompt": "what is 12 times 7"})

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "missing_api_key"
    assert "OPENAI_API_KEY" in error["message"]
    assert "ANTHROPIC_API_KEY" in error["message"]
    assert outcomes(error["attempts"]) == [
        ("openai/gpt-4.1", "primary", "skipped", "missing_api_key"),
        ("anthropic/claude-sonnet-4-5", "fallback", "skipped", "missing_api_key"),
    ]
    assert "Traceback" not in response.text


def test_route_needs_no_provider_key(make_client, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    client = make_client(routes=REAL_MODEL_ROUTES, router=KEYLESS_ROUTER, llm_api_base=None)
    response = client.post("/route", json={"prompt": "what is 12 times 7"})
    assert response.status_code == 200
    assert response.json()["route"] == "math"


# The tie-breaker settles low-similarity prompts


def test_a_low_similarity_prompt_is_settled_by_the_tiebreaker(make_client):
    call = ScriptedCall({TIEBREAKER: '{"route": "math"}'})
    client = make_client(router=UNSURE_ROUTER, llm_call=call)
    body = client.post("/complete", json={"prompt": MATHS_QUESTION}).json()

    decision = body["decision"]
    assert decision["method"] == "llm"
    assert decision["route"] == "math"
    assert decision["reason"] == "below_threshold"
    assert decision["candidates"], "the semantic candidates are kept"
    assert body["model"] == "openai/ok-math"
    assert call.models() == [TIEBREAKER, "openai/ok-math"]
    offered = call.calls[0]["response_format"]["json_schema"]["schema"]["properties"]["route"]
    shortlist = [c["route"] for c in decision["candidates"]][:4]
    assert offered["enum"] == [*shortlist, "none"]


def test_without_tiebreak_a_low_similarity_prompt_goes_to_the_default_route(make_client):
    call = ScriptedCall({TIEBREAKER: '{"route": "math"}'})
    client = make_client(router=UNSURE_ROUTER, llm_call=call)
    body = client.post("/complete", json={"prompt": MATHS_QUESTION, "tiebreak": False}).json()
    assert body["decision"]["method"] == "default"
    assert body["decision"]["route"] == "chitchat"
    assert TIEBREAKER not in call.models()


@pytest.mark.parametrize(
    ("tiebreaker", "answer"),
    [
        pytest.param("openai/e500-tb", None, id="provider-error"),
        pytest.param(TIEBREAKER, "I am not sure.", id="no-valid-name"),
        pytest.param(TIEBREAKER, '{"route": "none"}', id="none"),
    ],
)
def test_a_failed_tiebreaker_or_its_none_leads_to_the_default_route(
    make_client, tiebreaker, answer
):
    router = {**UNSURE_ROUTER, "tiebreaker": {"model": tiebreaker, "timeout_s": 2}}
    call = ScriptedCall({tiebreaker: answer} if answer else {})
    client = make_client(router=router, llm_call=call)
    response = client.post("/complete", json={"prompt": MATHS_QUESTION})
    assert response.status_code == 200
    decision = response.json()["decision"]
    assert (decision["method"], decision["route"]) == ("default", "chitchat")
    assert decision["candidates"]
    assert call.models()[0] == tiebreaker


def test_the_tiebreaker_is_offered_up_to_its_configured_max_candidates(make_client):
    """``max_candidates`` above the 5 candidates a decision lists is honoured: the router
    hands the tie-breaker every ranked route and the tie-breaker keeps as many as configured.
    """
    router = {**UNSURE_ROUTER, "tiebreaker": {"model": TIEBREAKER, "max_candidates": 6}}
    call = ScriptedCall({TIEBREAKER: '{"route": "none"}'})
    client = make_client(router=router, llm_call=call, top_k=50)
    client.post("/route", json={"prompt": MATHS_QUESTION})
    offered = call.calls[0]["response_format"]["json_schema"]["schema"]["properties"]["route"]
    assert sorted(offered["enum"]) == sorted([*API_ROUTES, "none"])


def test_route_uses_the_tiebreaker_the_same_way(make_client):
    call = ScriptedCall({TIEBREAKER: '{"route": "math"}'})
    client = make_client(router=UNSURE_ROUTER, llm_call=call)

    decided = client.post("/route", json={"prompt": MATHS_QUESTION}).json()
    assert (decided["method"], decided["route"], decided["model"]) == (
        "llm",
        "math",
        "openai/ok-math",
    )
    # The same prompt again (the encoder is cased: an upper-cased copy may shortlist
    # other candidates, and the cache is keyed by prompt and candidates).
    again = client.post("/route", json={"prompt": MATHS_QUESTION}).json()
    assert again["method"] == "llm"
    assert call.models() == [TIEBREAKER], "the repeated prompt is answered from the cache"

    skipped = client.post("/route", json={"prompt": MATHS_QUESTION, "tiebreak": False}).json()
    assert skipped["method"] == "default"


def test_a_confident_semantic_match_does_not_ask_the_tiebreaker(make_client):
    call = ScriptedCall({TIEBREAKER: '{"route": "cooking"}'})
    client = make_client(llm_call=call)
    decided = client.post("/route", json={"prompt": "what is 12 times 7"}).json()
    assert (decided["method"], decided["route"]) == ("semantic", "math")
    assert call.calls == []
