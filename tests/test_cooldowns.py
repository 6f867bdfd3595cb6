"""Cooldowns against the real fake provider server: a model that keeps failing (500, 429,
timeout) is skipped for its cooldown; requests the provider rejects (400) and answers the
chain rejects do not count; cooldowns show in /metrics and /stats and survive a reload."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from llm_fixtures import (  # noqa: F401
    API_ROUTER,
    API_ROUTES,
    MakeClient,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)
from pydantic import SecretStr

COOLDOWN = {"allowed_fails": 1, "window_s": 600, "cooldown_s": 600}
COOLING_ROUTER = {**API_ROUTER, "completion": {**API_ROUTER["completion"], "cooldown": COOLDOWN}}
RECIPE = {"prompt": "hi", "route": "cooking"}


def cooking_with(model: str, fallbacks: list[str] | None = None) -> dict[str, Any]:
    fallbacks = ["openai/ok-cook"] if fallbacks is None else fallbacks
    return {
        **API_ROUTES,
        "cooking": {**API_ROUTES["cooking"], "model": model, "fallbacks": fallbacks},
    }


def outcomes(body: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(a["model"], a["outcome"], a["error_type"]) for a in body["attempts"]]


@pytest.mark.parametrize("kind", ["e500", "e429", "slow"], ids=["500", "429", "timeout"])
def test_a_model_that_keeps_failing_is_skipped_during_its_cooldown(
    make_client: MakeClient, fake: FakeOpenAI, kind: str
) -> None:
    failing = f"openai/{kind}-cook"
    client = make_client(routes=cooking_with(failing), router=COOLING_ROUTER)

    answers = [client.post("/complete", json=RECIPE).json() for _ in range(3)]

    assert [a["answer"] for a in answers] == ["answer from ok-cook"] * 3
    assert [outcomes(a)[0][1] for a in answers[:2]] != ["skipped"] * 2
    assert outcomes(answers[2])[0][:3] == (failing, "skipped", "cooldown")
    assert fake.models_called().count(f"{kind}-cook") == 2, "allowed_fails + 1 calls, then none"


@pytest.mark.parametrize("kind", ["e400", "empty"], ids=["400", "empty answer"])
def test_a_rejected_request_or_answer_does_not_cool_the_model_down(
    make_client: MakeClient, fake: FakeOpenAI, kind: str
) -> None:
    client = make_client(routes=cooking_with(f"openai/{kind}-cook"), router=COOLING_ROUTER)

    answers = [client.post("/complete", json=RECIPE).json() for _ in range(3)]

    assert [outcomes(a)[0][1] for a in answers] == [answers[0]["attempts"][0]["outcome"]] * 3
    assert "skipped" not in {o for a in answers for _, o, _ in outcomes(a)}
    assert fake.models_called().count(f"{kind}-cook") == 3


def test_when_every_model_cools_down_the_answer_is_a_503_with_retry_after(
    make_client: MakeClient,
) -> None:
    routes = cooking_with("openai/e500-cook", ["openai/e429-cook"])
    client = make_client(routes=routes, router=COOLING_ROUTER)

    failed = [client.post("/complete", json=RECIPE) for _ in range(2)]
    cooling = client.post("/complete", json=RECIPE)

    assert [r.status_code for r in failed] == [502, 502]
    assert cooling.status_code == 503, cooling.text
    assert cooling.headers["retry-after"] == "600"
    error = cooling.json()["error"]
    assert error["type"] == "models_cooling_down"
    assert {a["error_type"] for a in error["attempts"]} == {"cooldown"}


def test_the_openai_endpoint_skips_a_cooling_model_too(make_client: MakeClient) -> None:
    client = make_client(routes=cooking_with("openai/e500-cook"), router=COOLING_ROUTER)
    for _ in range(2):
        client.post("/complete", json=RECIPE)

    chat = {"model": "cooking", "messages": [{"role": "user", "content": "hi"}]}
    answer = client.post("/v1/chat/completions", json=chat)

    assert answer.status_code == 200
    assert answer.headers["x-semroute-served-model"] == "openai/ok-cook"


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_cooldowns_show_in_metrics_and_stats(make_client: MakeClient) -> None:
    client = make_client(routes=cooking_with("openai/e500-cook"), router=COOLING_ROUTER)
    for _ in range(2):
        client.post("/complete", json=RECIPE)

    text = client.get("/metrics").text
    stats = client.get("/stats").json()

    assert metric(text, "semroute_cooldowns_started_total", model="openai/e500-cook") == 1
    left = metric(text, "semroute_model_cooldown_seconds", model="openai/e500-cook")
    assert left is not None and 0 < left <= 600
    assert metric(text, "semroute_model_cooldown_seconds", model="openai/ok-cook") == 0
    assert 0 < stats["cooldowns"]["openai/e500-cook"]["seconds_left"] <= 600
    assert "openai/ok-cook" not in stats["cooldowns"]
    assert stats["scope"]["cooldowns"] == "this replica"


def test_state_survives_a_reload(make_client: MakeClient) -> None:
    """Conversations keep their route, cooldowns hold, decisions still take feedback."""
    client = make_client(
        routes=cooking_with("openai/e500-cook"),
        router=COOLING_ROUTER,
        admin_key=SecretStr("admin"),
    )
    started = client.post("/route", json={"prompt": "what is 12 times 7", "conversation_id": "c"})
    for _ in range(2):
        client.post("/complete", json=RECIPE)
    before = client.app.state.engine  # type: ignore[attr-defined]

    reloaded = client.post("/admin/reload", headers={"Authorization": "Bearer admin"})

    assert reloaded.status_code == 200, reloaded.text
    after_reload = client.app.state.engine  # type: ignore[attr-defined]
    assert after_reload is not before
    assert after_reload.state is before.state, "latency averages included"
    follow_up = client.post("/route", json={"prompt": "and now?", "conversation_id": "c"}).json()
    assert (follow_up["route"], follow_up["method"]) == ("math", "context")
    after = client.post("/complete", json=RECIPE).json()
    assert outcomes(after)[0][1:] == ("skipped", "cooldown")
    rated = client.post(
        "/feedback", json={"decision_id": started.json()["decision_id"], "rating": 1}
    )
    assert rated.status_code == 200, rated.text
