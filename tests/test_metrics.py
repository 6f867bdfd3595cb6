"""GET /metrics: Prometheus text that a Prometheus parser reads, with the counts of what happened."""

from __future__ import annotations

import litellm
import pytest
from llm_fixtures import (  # noqa: F401
    API_ROUTER,
    API_ROUTES,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)
from prometheus_client.parser import text_string_to_metric_families

MATHS = "what is 12 times 7"
RECIPE = "give me a recipe for vegetarian lasagna"
UNSURE_ROUTER = {**API_ROUTER, "default_threshold": 0.95}
MATHS_QUESTION = "can you help me with my algebra homework about quadratic equations"


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (sample name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_decisions_are_counted_by_route_method_and_endpoint(make_client):
    client = make_client()
    for _ in range(2):
        client.post("/route", json={"prompt": MATHS})
    client.post("/complete", json={"prompt": MATHS})
    samples = scrape(client)
    decisions = "semroute_decisions_total"
    assert value(samples, decisions, route="math", method="semantic", endpoint="route") == 2
    assert value(samples, decisions, route="math", method="semantic", endpoint="complete") == 1
    assert value(samples, "semroute_decision_seconds_count", method="semantic") == 3


def test_completions_count_models_outcomes_tokens_and_fallbacks(make_client):
    client = make_client()
    assert client.post("/complete", json={"prompt": RECIPE}).status_code == 200
    assert client.post("/complete", json={"prompt": MATHS}).status_code == 200
    samples = scrape(client)
    completions = "semroute_completions_total"
    assert (
        value(samples, completions, model="openai/e500-cook", role="primary", outcome="error") == 1
    )
    assert value(samples, completions, model="openai/ok-cook", role="fallback", outcome="ok") == 1
    assert value(samples, completions, model="openai/ok-math", role="primary", outcome="ok") == 1
    assert value(samples, "semroute_fallbacks_total", route="cooking") == 1
    assert value(samples, "semroute_fallbacks_total", route="math") == 0
    assert value(samples, "semroute_completion_requests_total", route="cooking", result="ok") == 1
    assert value(samples, "semroute_tokens_total", model="openai/ok-math", kind="prompt") == 11
    assert value(samples, "semroute_tokens_total", model="openai/ok-math", kind="completion") == 7
    assert value(samples, "semroute_completion_seconds_count", model="openai/ok-cook") == 1
    assert value(samples, "semroute_completion_request_seconds_count", route="cooking") == 1


def test_a_failed_chain_is_counted_as_failed(make_client):
    client = make_client()
    assert (
        client.post(
            "/complete", json={"prompt": "route me to the broken models please"}
        ).status_code
        == 502
    )
    samples = scrape(client)
    assert (
        value(samples, "semroute_completion_requests_total", route="broken", result="failed") == 1
    )
    assert value(samples, "semroute_fallbacks_total", route="broken") == 0


def test_priced_models_add_their_cost(make_client):
    priced = {**API_ROUTES, "math": {**API_ROUTES["math"], "model": "openai/gpt-4.1-nano"}}
    client = make_client(routes=priced)
    client.post("/complete", json={"prompt": MATHS})
    samples = scrape(client)
    expected = sum(
        litellm.cost_per_token(model="openai/gpt-4.1-nano", prompt_tokens=11, completion_tokens=7)
    )
    assert value(samples, "semroute_cost_usd_total", model="openai/gpt-4.1-nano") == pytest.approx(
        expected
    )


def test_tiebreaker_outcomes_are_exported(make_client):
    client = make_client(router=UNSURE_ROUTER)
    client.post("/route", json={"prompt": MATHS_QUESTION})
    samples = scrape(client)
    # the fake's ok-tb answers prose that names no route: an invalid choice
    assert value(samples, "semroute_tiebreaker_calls_total", outcome="invalid") == 1


def test_micro_batching_is_exported(make_client):
    client = make_client()
    before = scrape(client)
    for prompt in (MATHS, f"{MATHS} please", f"{MATHS} now"):
        client.post("/route", json={"prompt": prompt, "tiebreak": False})
    after = scrape(client)

    def grew(name: str) -> float:
        return value(after, name) - value(before, name)

    # one at a time: each request is a batch of one
    assert grew("semroute_encoder_batches_total") == 3
    assert grew("semroute_encoder_batched_prompts_total") == 3
    assert value(after, "semroute_encoder_largest_batch") == 1


def test_every_app_has_its_own_registry(make_client):
    first, second = make_client(), make_client()
    first.post("/route", json={"prompt": MATHS})
    key = ("route", "math"), ("method", "semantic"), ("endpoint", "route")
    assert value(scrape(first), "semroute_decisions_total", **dict(key)) == 1
    assert value(scrape(second), "semroute_decisions_total", **dict(key)) == 0
