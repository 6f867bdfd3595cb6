"""Provider faults against a real local HTTP server (tests/fake_openai.py): each one ends in
a fallback or a clear 502/504 within the deadline, and leaves no task behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgi_serving import serving
from llm_fixtures import (  # noqa: F401
    API_ROUTER,
    API_ROUTES,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    write_route_folder,
)

from service.api.app import create_app
from service.config.settings import Settings

DEADLINE_S = 1.25
ROUTER = {**API_ROUTER, "completion": {"attempt_timeout_s": 0.5, "deadline_s": DEADLINE_S}}
FAULTS = {
    "timeout": ("slow", "Timeout"),
    "http 500": ("e500", None),
    "http 429 with retry-after": ("e429", None),
    "malformed json": ("garbage", None),
    "connection reset": ("drop", None),
    "empty answer": ("empty", None),
}


def fault_routes(kind: str) -> dict[str, dict[str, Any]]:
    """Route ``cooking``: the faulty model, then a good fallback; ``broken``: the faulty one only.

    Only models change, so the module's index still fits (its fingerprint covers utterances).
    """
    return {
        **API_ROUTES,
        "cooking": {
            **API_ROUTES["cooking"],
            "model": f"openai/{kind}-a",
            "fallbacks": ["openai/ok-a"],
        },
        "broken": {**API_ROUTES["broken"], "model": f"openai/{kind}-b", "fallbacks": []},
    }


async def settle(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks started since ``before`` that are still pending after a short grace."""
    for _ in range(40):
        left = {t for t in asyncio.all_tasks() - before if not t.done()}
        left.discard(asyncio.current_task())  # type: ignore[arg-type]
        if not left:
            return set()
        await asyncio.sleep(0.05)
    return left


@pytest.mark.parametrize(("kind", "error_type"), FAULTS.values(), ids=FAULTS.keys())
async def test_fault_ends_in_a_fallback_or_a_clear_error_within_the_deadline(
    kind: str, error_type: str | None, encoder: Any, api_index: Any, fake: Any, tmp_path: Any
) -> None:
    folder = write_route_folder(tmp_path / "routes", fault_routes(kind), ROUTER)
    settings = Settings(
        routes_dir=folder, index_dir=api_index, llm_api_base=fake.api_base, llm_api_key="k"
    )
    app = create_app(settings, encoder=encoder)
    async with serving(app) as client:
        await client.post("/complete", json={"prompt": "hi", "route": "chitchat"})  # warm litellm
        before = asyncio.all_tasks()

        rescued = await client.post("/complete", json={"prompt": "hi", "route": "cooking"})
        doomed = await client.post("/complete", json={"prompt": "hi", "route": "broken"})

        assert rescued.status_code == 200, rescued.text
        body = rescued.json()
        assert body["answer"] == "answer from ok-a"
        assert body["attempts"][0]["outcome"] != "ok"
        if error_type:
            assert body["attempts"][0]["error_type"] == error_type
        assert doomed.status_code in {502, 504}, doomed.text
        error = doomed.json()["error"]
        assert error["type"] in {"all_models_failed", "deadline_exceeded"}
        assert error["attempts"][0]["model"].endswith(f"{kind}-b")
        assert not await settle(before), "no task outlives its request"
