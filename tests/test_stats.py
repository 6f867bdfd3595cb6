"""GET /stats: per route and per model since start, matching a counted sequence of requests.

The fake provider answers every call with 11 prompt and 7 completion tokens; real model
names (gpt-4.1-*) are priced by litellm's cost map, the fake's own names (ok-*) are not.
"""

from __future__ import annotations

import litellm
import pytest
from llm_fixtures import (  # noqa: F401
    API_ROUTES,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)

from service.ops.stats import most_expensive

MATHS = "what is 12 times 7"
RECIPE = "give me a recipe for vegetarian lasagna"
HELLO = "hello there, how are you today"
BROKEN = "route me to the broken models please"
ROUTES = {
    **API_ROUTES,
    "math": {**API_ROUTES["math"], "model": "openai/gpt-4.1-nano"},
    "cooking": {**API_ROUTES["cooking"], "fallbacks": ["openai/gpt-4.1-mini"]},
    # never asked: it only makes gpt-4.1 the most expensive configured model
    "blanks": {**API_ROUTES["blanks"], "model": "openai/gpt-4.1"},
}


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    return sum(
        litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    )


@pytest.fixture
def stats(make_client):
    client = make_client(routes=ROUTES)
    for _ in range(3):
        assert client.post("/complete", json={"prompt": MATHS}).status_code == 200
    for _ in range(2):
        assert client.post("/complete", json={"prompt": RECIPE}).status_code == 200
    assert client.post("/complete", json={"prompt": HELLO}).status_code == 200
    assert client.post("/complete", json={"prompt": BROKEN}).status_code == 502
    assert client.post("/route", json={"prompt": MATHS}).status_code == 200
    response = client.get("/stats")
    assert response.status_code == 200
    return response.json()


def test_totals_count_every_completion_request(stats):
    assert stats["requests"] == 7
    assert stats["success_rate"] == pytest.approx(6 / 7, abs=1e-6)
    assert stats["baseline_model"] == "openai/gpt-4.1"


def test_each_route_reports_volume_success_latency_and_cost(stats):
    maths = stats["routes"]["math"]
    assert maths["decisions"] == 4, "three completions and one /route"
    assert maths["requests"] == 3
    assert maths["success_rate"] == 1.0
    assert maths["latency_p50_ms"] > 0
    assert maths["latency_p95_ms"] >= maths["latency_p50_ms"]
    nano = price("openai/gpt-4.1-nano", 11, 7)
    assert maths["cost_usd"] == pytest.approx(3 * nano)
    assert maths["cost_per_request_usd"] == pytest.approx(nano)
    broken = stats["routes"]["broken"]
    assert (broken["requests"], broken["successes"], broken["success_rate"]) == (1, 0, 0.0)
    assert stats["routes"]["chitchat"]["cost_usd"] == 0.0, "an unpriced model costs nothing known"


def test_the_saving_is_measured_against_the_most_expensive_model(stats):
    maths = stats["routes"]["math"]
    baseline = price("openai/gpt-4.1", 33, 21)
    assert maths["baseline_cost_usd"] == pytest.approx(baseline)
    assert maths["saving_usd"] == pytest.approx(baseline - 3 * price("openai/gpt-4.1-nano", 11, 7))
    cooking = stats["routes"]["cooking"]
    assert cooking["saving_usd"] == pytest.approx(
        price("openai/gpt-4.1", 22, 14) - 2 * price("openai/gpt-4.1-mini", 11, 7)
    )
    answered = price("openai/gpt-4.1", 6 * 11, 6 * 7)
    assert stats["baseline_cost_usd"] == pytest.approx(answered)
    assert stats["saving_usd"] == pytest.approx(answered - stats["cost_usd"])
    assert 0 < stats["saving_ratio"] < 1


def test_each_model_reports_its_own_attempts(stats):
    models = stats["models"]
    assert models["openai/gpt-4.1-nano"]["requests"] == 3
    assert models["openai/e500-cook"]["requests"] == 2
    assert models["openai/e500-cook"]["success_rate"] == 0.0
    assert models["openai/gpt-4.1-mini"]["success_rate"] == 1.0
    assert models["openai/gpt-4.1-mini"]["cost_per_request_usd"] == pytest.approx(
        price("openai/gpt-4.1-mini", 11, 7)
    )
    assert "openai/gpt-4.1" not in models, "a model never called has no entry"


def test_the_most_expensive_model_ignores_unpriced_ones():
    assert most_expensive(["openai/ok-chat", "openai/gpt-4.1-nano", "openai/gpt-4.1"]) == (
        "openai/gpt-4.1"
    )
    assert most_expensive(["openai/ok-chat"]) is None


def test_stats_start_empty(make_client):
    body = make_client().get("/stats").json()
    assert body["requests"] == 0
    assert body["success_rate"] is None
    assert body["routes"] == {}
    assert body["models"] == {}
