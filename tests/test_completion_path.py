"""One completion path behind POST /complete and POST /v1/chat/completions.

Both endpoints route, cap the whole request (tie-breaker included) at the policy's deadline,
run the fallback chain and teach the latency limit what they observed; they differ only in
the shapes of request and response. Each behaviour is checked on both endpoints.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llm_fixtures import (  # noqa: F401
    API_ROUTER,
    API_ROUTES,
    MakeClient,
    ScriptedCall,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)

TIEBREAKER = API_ROUTER["tiebreaker"]["model"]
DEADLINE_S = API_ROUTER["completion"]["deadline_s"]
UNSURE_ROUTER = {
    **API_ROUTER,
    "default_threshold": 0.99,
    # every route on the shortlist, so the tie-breaker's answer below is always a candidate
    "tiebreaker": {"model": TIEBREAKER, "timeout_s": 5, "max_candidates": 6},
}
UNSURE_PROMPT = "can you help me with my algebra homework about quadratic equations"
ENDPOINTS = ["/complete", "/v1/chat/completions"]

SLOW_PRIOR_MS = 60_000
"""The cheap math model's declared latency: far above the limit below, until observed."""
LIMIT_MS = 30_000
LATENCY_ROUTES = {
    **API_ROUTES,
    "math": {
        **API_ROUTES["math"],
        "models": [
            {
                "model": "openai/ok-math",
                "tier": "economy",
                "cost_per_1k_tokens": 0.1,
                "expected_latency_ms": SLOW_PRIOR_MS,
            },
            {"model": "openai/ok-math-pro", "tier": "best", "cost_per_1k_tokens": 2.0},
        ],
    },
}


class SlowTiebreaker(ScriptedCall):
    """The tie-breaker answers ``route`` after ``seconds``; other models as ScriptedCall."""

    def __init__(self, route: str, seconds: float):
        super().__init__({TIEBREAKER: f'{{"route": "{route}"}}'})
        self.seconds = seconds

    async def __call__(self, **kwargs: Any) -> Any:
        if kwargs["model"] == TIEBREAKER:
            await asyncio.sleep(self.seconds)
        return await super().__call__(**kwargs)


def ask(client: Any, endpoint: str, **fields: Any) -> Any:
    """POST the same routed request to either endpoint, in that endpoint's shape."""
    if endpoint == "/complete":
        return client.post(endpoint, json=fields)
    body = {k: v for k, v in fields.items() if k not in ("prompt", "route")}
    body["messages"] = [{"role": "user", "content": fields["prompt"]}]
    body["model"] = fields.get("route", "auto")
    return client.post(endpoint, json=body)


def model_for_a_latency_limit(client: Any) -> str:
    decision = client.post(
        "/route",
        json={"prompt": "what is 12 times 7", "quality": "economy", "max_latency_ms": LIMIT_MS},
    ).json()
    return str(decision["model"])


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_answers_of_either_endpoint_teach_the_latency_limit(
    make_client: MakeClient, endpoint: str
) -> None:
    client = make_client(routes=LATENCY_ROUTES)
    assert model_for_a_latency_limit(client) == "openai/ok-math-pro", "the prior is too slow"

    answered = ask(client, endpoint, prompt="what is 12 times 7", quality="economy")

    assert answered.status_code == 200, answered.text
    assert model_for_a_latency_limit(client) == "openai/ok-math", "observed: fast enough"


def test_streamed_answers_teach_the_latency_limit_too(make_client: MakeClient) -> None:
    client = make_client(routes=LATENCY_ROUTES)
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "what is 12 times 7"}],
        "quality": "economy",
        "stream": True,
    }

    with client.stream("POST", "/v1/chat/completions", json=body) as streamed:
        assert streamed.status_code == 200
        assert "[DONE]" in "".join(streamed.iter_text())

    assert model_for_a_latency_limit(client) == "openai/ok-math"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_tiebreaker_slower_than_the_deadline_ends_in_a_504(
    make_client: MakeClient, endpoint: str
) -> None:
    call = SlowTiebreaker("math", seconds=DEADLINE_S + 1.5)
    client = make_client(router=UNSURE_ROUTER, llm_call=call, top_k=50)

    response = ask(client, endpoint, prompt=UNSURE_PROMPT)

    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["type"] == "deadline_exceeded"
    assert error["attempts"] == [], "no model was called: the decision used up the deadline"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_time_spent_by_the_tiebreaker_leaves_the_chain_its_record(
    make_client: MakeClient, endpoint: str
) -> None:
    """The chain gets what the decision left of the deadline and reports every attempt."""
    call = SlowTiebreaker("sluggish", seconds=0.6)
    client = make_client(router=UNSURE_ROUTER, llm_call=call, top_k=50)

    response = ask(client, endpoint, prompt=UNSURE_PROMPT)

    assert response.status_code == 504, response.text
    attempts = response.json()["error"]["attempts"]
    assert attempts, "the attempts made before the deadline are reported"
    assert {a["outcome"] for a in attempts} == {"timeout"}
    assert all(a["model"].startswith("openai/slow-") for a in attempts)
