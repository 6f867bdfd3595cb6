"""Limits: messages per request, completions in flight, and the overall /complete deadline
covering the tie-breaker too."""

from __future__ import annotations

import asyncio
from typing import Any

import litellm
from asgi_serving import serving
from llm_fixtures import (  # noqa: F401
    API_ROUTER,
    API_ROUTES,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
    user,
    write_route_folder,
)

from service.api.app import create_app
from service.api.limits import COMPLETION_PATHS
from service.config.settings import Settings


def test_the_in_flight_limit_names_only_paths_the_app_serves(settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    assert all("post" in paths.get(path, {}) for path in COMPLETION_PATHS), sorted(paths)


def test_too_many_messages_are_refused_with_413(make_client: Any) -> None:
    client = make_client(max_messages=3)
    chat = [{"role": "user", "content": "what is 12 times 7"}] * 4
    for path in ("/route", "/complete"):
        response = client.post(path, json={"messages": chat})
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["type"] == "too_many_messages"
        assert "4 messages" in error["message"] and "at most 3" in error["message"]
    response = client.post("/route", json={"messages": chat[:3], "tiebreak": False})
    assert response.status_code == 200


async def test_completions_beyond_the_limit_get_503_with_retry_after_at_once(
    encoder: Any, api_index: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def held_call(**kwargs: Any) -> Any:
        entered.set()
        await gate.wait()
        return await litellm.acompletion(**kwargs, mock_response="done")

    router = {**API_ROUTER, "completion": {"attempt_timeout_s": 30, "deadline_s": 60}}
    folder = write_route_folder(tmp_path / "routes", API_ROUTES, router)
    settings = Settings(routes_dir=folder, index_dir=api_index, max_inflight_completions=1)
    app = create_app(settings, encoder=encoder, llm_call=held_call)
    async with serving(app) as client:
        body = {"prompt": "hi", "route": "math"}
        first = asyncio.create_task(client.post("/complete", json=body))
        await asyncio.wait_for(entered.wait(), 10)

        refused = await client.post("/complete", json=body)
        assert not first.done(), "refused while the first is still held: not queued behind it"
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "overloaded"
        routed = await client.post("/route", json={"prompt": "hi", "tiebreak": False})
        assert routed.status_code == 200, "routing is not limited by completions"

        gate.set()
        assert (await first).status_code == 200
        assert (await client.post("/complete", json=body)).status_code == 200


def test_the_overall_deadline_also_bounds_the_tiebreaker(make_client: Any, fake: Any) -> None:
    router = {
        **API_ROUTER,
        "tiebreaker": {"model": "openai/slow-tb", "timeout_s": 30},
        "completion": {"attempt_timeout_s": 0.5, "deadline_s": 1.0},
    }
    client = make_client(router=router)
    response = client.post("/complete", json={"messages": user("quarterly corporate tax filing")})
    assert response.status_code == 504, response.text
    assert response.json()["error"]["type"] == "deadline_exceeded"
    assert "slow-tb" in fake.models_called()
    assert fake.wait_abandoned(["slow-tb"]), "the tie-breaker was cut at the 1 s deadline"
