"""Hot reload: POST /admin/reload and SIGHUP swap in new routes + index without downtime;
requests in flight finish on the engine they started with; a failed reload changes nothing."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import litellm
import pytest
from asgi_serving import serving
from conftest import write_route_folder
from pydantic import SecretStr

from service.api.app import create_app
from service.api.reload import leases_of
from service.config.routes import load_route_set
from service.config.settings import Settings
from service.index.store import build_index

ADMIN = {"Authorization": "Bearer admin-key"}
ASTRONOMY = {
    "description": "Stars, planets and telescopes.",
    "model": "openai/gpt-4.1-mini",
    "utterances": [
        "how far away is the andromeda galaxy",
        "what telescope should I buy to see saturn's rings",
        "why do stars twinkle at night",
    ],
}


def admin_settings(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"admin_key": SecretStr("admin-key"), **changes})


def add_route_and_rebuild(settings: Settings, encoder: Any) -> None:
    write_route_folder(settings.routes_dir, {"astronomy": ASTRONOMY})
    build_index(load_route_set(settings.routes_dir), encoder, settings.index_dir)


async def test_reload_serves_new_routes_and_index(settings: Settings, encoder: Any) -> None:
    settings = admin_settings(settings)
    async with serving(create_app(settings, encoder=encoder), **ADMIN) as client:
        before = (await client.get("/readyz")).json()["index_fingerprint"]
        add_route_and_rebuild(settings, encoder)

        response = await client.post("/admin/reload")

        assert response.status_code == 200, response.text
        result = response.json()
        assert result["previous_fingerprint"] == before
        assert result["index_fingerprint"] != before and result["routes"] == 4
        assert (await client.get("/readyz")).json()["index_fingerprint"] == result[
            "index_fingerprint"
        ]
        names = [r["name"] for r in (await client.get("/routes")).json()]
        assert "astronomy" in names
        decision = await client.post(
            "/route", json={"prompt": "which telescope shows jupiter's moons", "tiebreak": False}
        )
        assert decision.json()["route"] == "astronomy"


async def test_failed_reload_keeps_the_old_engine_serving(settings: Settings, encoder: Any) -> None:
    settings = admin_settings(settings)
    app = create_app(settings, encoder=encoder)
    async with serving(app, **ADMIN) as client:
        serving_engine = app.state.engine
        (settings.routes_dir / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")

        response = await client.post("/admin/reload")

        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["type"] == "reload_failed"
        assert "broken.yaml" in error["message"]
        assert "keep serving" in error["message"]
        assert app.state.engine is serving_engine
        routed = await client.post("/route", json={"prompt": "hello there", "tiebreak": False})
        assert routed.status_code == 200


async def test_routes_changed_without_a_rebuild_are_refused_as_stale(
    settings: Settings, encoder: Any
) -> None:
    settings = admin_settings(settings)
    async with serving(create_app(settings, encoder=encoder), **ADMIN) as client:
        write_route_folder(settings.routes_dir, {"astronomy": ASTRONOMY})
        response = await client.post("/admin/reload")
        assert response.status_code == 409
        assert "build_index.py" in response.json()["error"]["message"]


async def test_requests_in_flight_finish_on_the_engine_they_started_with(
    settings: Settings, encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    gate, entered = asyncio.Event(), asyncio.Event()

    async def held_call(**kwargs: Any) -> Any:
        entered.set()
        await gate.wait()
        return await litellm.acompletion(**kwargs, mock_response="finished")

    settings = admin_settings(settings)
    app = create_app(settings, encoder=encoder, llm_call=held_call)
    async with serving(app, **ADMIN) as client:
        old = app.state.engine
        closed: list[bool] = []
        close_router = old.router.close
        old.router.close = lambda: (closed.append(True), close_router())[-1]  # type: ignore[method-assign]
        held = asyncio.create_task(
            client.post("/complete", json={"prompt": "hi", "route": "coding"})
        )
        await asyncio.wait_for(entered.wait(), 10)
        add_route_and_rebuild(settings, encoder)

        assert (await client.post("/admin/reload")).status_code == 200

        assert app.state.engine is not old
        assert leases_of(app).in_flight(old) == 1
        assert not closed, "the old engine stays open while in use"
        gate.set()
        response = await held
        assert response.status_code == 200, response.text
        assert response.json()["answer"] == "finished"
        assert response.json()["decision"]["index_fingerprint"] == old.index.fingerprint
        for _ in range(100):
            if closed:
                break
            await asyncio.sleep(0.05)
        assert closed == [True], "closed once its last request finished"


async def test_sighup_reloads_in_the_server_process(settings: Settings, encoder: Any) -> None:
    app = create_app(settings, encoder=encoder)
    async with serving(app) as client:
        old = app.state.engine
        add_route_and_rebuild(settings, encoder)

        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if app.state.engine is not old:
                break
            await asyncio.sleep(0.05)

        assert app.state.engine is not old
        assert "astronomy" in [r["name"] for r in (await client.get("/routes")).json()]


async def test_a_failed_sighup_reload_is_logged_and_changes_nothing(
    settings: Settings, encoder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, encoder=encoder)
    async with serving(app) as client:
        old = app.state.engine
        (settings.routes_dir / "router.yaml").write_text("default_route: nowhere\n")
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if "reload on SIGHUP failed" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "reload on SIGHUP failed" in caplog.text
        assert app.state.engine is old
        assert (await client.get("/readyz")).status_code == 200
