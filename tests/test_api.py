"""The HTTP API through the real ASGI app: /route, /routes, probes, errors, start-up checks."""

import copy
import gc
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    CODING_PROMPT,
    COOKING_PROMPT,
    SMALL_ROUTER,
    SMALL_ROUTES,
    WriteRoutes,
)
from fastapi.testclient import TestClient
from httpx import Response

from service.api.app import StartupError, create_app
from service.config.settings import Settings
from service.encoding.encoder import Encoder
from service.index.store import read_manifest

MakeClient = Callable[..., TestClient]

DECISION_FIELDS = {
    "route",
    "model",
    "fallbacks",
    "method",
    "score",
    "confidence",
    "margin",
    "candidates",
    "matches",
    "reason",
    "latency_ms",
    "decision_id",
    "index_fingerprint",
}


@pytest.fixture
def make_client(settings: Settings, encoder: Encoder) -> Iterator[MakeClient]:
    """``make_client(**overrides)``: a started client of an app whose settings are overridden."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> TestClient:
            app = create_app(settings.model_copy(update=overrides), encoder=encoder)
            return stack.enter_context(TestClient(app))

        yield make


def _assert_error(response: Response, status: int, type_: str, *in_message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == type_
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    for text in in_message:
        assert text in body["error"]["message"]


# -- POST /route ------------------------------------------------------------------------------


def test_route_returns_a_full_decision(client: TestClient, small_index: Path) -> None:
    response = client.post("/route", json={"prompt": CODING_PROMPT})

    assert response.status_code == 200
    decision = response.json()
    assert decision.keys() >= DECISION_FIELDS
    assert decision["route"] == "coding"
    assert decision["model"] == "openai/gpt-4.1"
    assert decision["fallbacks"] == ["anthropic/claude-sonnet-4-5"]
    assert decision["method"] == "semantic"
    assert decision["candidates"][0] == {"route": "coding", "score": decision["score"]}
    assert decision["margin"] > 0
    assert decision["matches"] is None
    assert decision["index_fingerprint"] == read_manifest(small_index)["fingerprint"]


def test_every_decision_id_is_unique(client: TestClient) -> None:
    responses = [client.post("/route", json={"prompt": CODING_PROMPT}) for _ in range(3)]

    assert len({response.json()["decision_id"] for response in responses}) == 3


def test_route_accepts_a_chat_and_routes_its_last_user_message(client: TestClient) -> None:
    messages = [
        {"role": "user", "content": CODING_PROMPT},
        {"role": "assistant", "content": "Here is the fix."},
        {"role": "user", "content": COOKING_PROMPT},
    ]

    response = client.post("/route", json={"messages": messages, "metadata": {"tier": "free"}})

    assert response.status_code == 200
    assert response.json()["route"] == "cooking"


def test_explain_returns_the_nearest_utterances(client: TestClient) -> None:
    response = client.post("/route", json={"prompt": COOKING_PROMPT, "explain": True})

    matches = response.json()["matches"]
    assert len(matches) == 10
    assert set(matches[0]) == {"route", "utterance", "similarity"}
    assert matches[0]["route"] == "cooking"
    similarities = [match["similarity"] for match in matches]
    assert similarities == sorted(similarities, reverse=True)


def test_override_forces_the_named_route(client: TestClient) -> None:
    response = client.post("/route", json={"prompt": CODING_PROMPT, "route": "cooking"})

    assert response.status_code == 200
    assert response.json()["route"] == "cooking"
    assert response.json()["method"] == "override"
    assert response.json()["model"] == "openai/gpt-4.1-mini"


# -- client errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "in_message"),
    [
        pytest.param({"prompt": "   "}, "'prompt' is empty", id="empty-prompt"),
        pytest.param(
            {"prompt": CODING_PROMPT, "messages": [{"role": "user", "content": "hi"}]},
            "exactly one of 'prompt' or 'messages'",
            id="prompt-and-messages",
        ),
        pytest.param({}, "exactly one of 'prompt' or 'messages'", id="neither"),
        pytest.param(
            {"messages": [{"role": "assistant", "content": "hello"}]},
            "no user message",
            id="no-user-message",
        ),
        pytest.param({"prompt": 42}, "prompt", id="prompt-not-a-string"),
        pytest.param({"prompt": CODING_PROMPT, "explain": "very"}, "explain", id="explain-type"),
        pytest.param({"messages": "hello"}, "messages", id="messages-not-a-list"),
        pytest.param(
            {"messages": [{"role": "wizard", "content": "hi"}]}, "role", id="unknown-role"
        ),
        pytest.param({"prompt": CODING_PROMPT, "colour": "blue"}, "colour", id="unknown-key"),
        pytest.param([CODING_PROMPT], "", id="body-not-an-object"),
    ],
)
def test_invalid_request_is_422_with_the_field(
    client: TestClient, body: Any, in_message: str
) -> None:
    response = client.post("/route", json=body)

    _assert_error(response, 422, "invalid_request", in_message)


def test_unknown_route_override_is_400_listing_the_routes(client: TestClient) -> None:
    response = client.post("/route", json={"prompt": CODING_PROMPT, "route": "weather"})

    _assert_error(response, 400, "unknown_route", "'weather'", "coding, cooking, greetings")


def test_invalid_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/route", content=b'{"prompt": "unterminated', headers={"content-type": "application/json"}
    )

    _assert_error(response, 400, "invalid_json")


def test_non_json_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/route", content=CODING_PROMPT.encode(), headers={"content-type": "text/plain"}
    )

    _assert_error(response, 415, "unsupported_media_type", "application/json", "text/plain")


def test_prompt_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(max_prompt_chars=50)

    response = client.post("/route", json={"prompt": "x" * 51})

    _assert_error(response, 413, "prompt_too_large", "51 characters", "50")


def test_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=2048)

    response = client.post("/route", json={"prompt": "x" * 3000})

    _assert_error(response, 413, "request_too_large", "2048 bytes")


def test_chunked_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=2048)
    payload = json.dumps({"prompt": "x" * 3000}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 512):
            yield payload[start : start + 512]

    response = client.post("/route", content=chunks(), headers={"content-type": "application/json"})

    _assert_error(response, 413, "request_too_large", "2048 bytes")


def test_unknown_path_is_404(client: TestClient) -> None:
    _assert_error(client.get("/nowhere"), 404, "not_found")


def test_wrong_method_is_405(client: TestClient) -> None:
    response = client.get("/route")
    _assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


# -- GET /routes and probes -------------------------------------------------------------------


def test_routes_lists_every_route_with_its_policy(client: TestClient) -> None:
    response = client.get("/routes")

    assert response.status_code == 200
    routes = {route["name"]: route for route in response.json()}
    assert list(routes) == ["coding", "cooking", "greetings"]
    coding = routes["coding"]
    assert coding["model"] == "openai/gpt-4.1"
    assert coding["fallbacks"] == ["anthropic/claude-sonnet-4-5"]
    assert coding["threshold"] == pytest.approx(0.25)
    assert coding["utterances"] == 6
    assert coding["description"] == SMALL_ROUTES["coding"]["description"]
    assert routes["cooking"]["threshold"] == pytest.approx(SMALL_ROUTER["default_threshold"])
    assert routes["greetings"]["utterances"] == 5


def test_healthz_and_readyz_answer_200_once_started(client: TestClient, small_index: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["vectors"] == 17
    assert ready.json()["index_fingerprint"] == read_manifest(small_index)["fingerprint"]


@pytest.fixture
def unfrozen_collector() -> Iterator[None]:
    """No object frozen when the test starts; afterwards the collector is left frozen or not,
    as it was found (every app of the run freezes its start-up objects, and unfreezing them
    for good would make every later full collection walk them again)."""
    was_frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    yield
    gc.unfreeze()
    if was_frozen:
        gc.freeze()


@pytest.mark.usefixtures("unfrozen_collector")
def test_start_up_objects_are_kept_out_of_garbage_collection(
    settings: Settings, encoder: Encoder
) -> None:
    """Start-up freezes what it leaves, so a full collection no longer walks it."""
    assert gc.get_freeze_count() == 0

    with TestClient(create_app(settings, encoder=encoder)) as started:
        assert started.get("/readyz").status_code == 200
        assert gc.get_freeze_count() > 10_000


def test_readyz_is_503_until_the_lifespan_has_run(settings: Settings, encoder: Encoder) -> None:
    not_started = TestClient(create_app(settings, encoder=encoder))

    assert not_started.get("/healthz").status_code == 200
    _assert_error(not_started.get("/readyz"), 503, "not_ready")
    _assert_error(not_started.post("/route", json={"prompt": "hi"}), 503, "not_ready")


# -- start-up checks --------------------------------------------------------------------------


def test_app_refuses_to_start_without_an_index(small_routes: Path, tmp_path: Path) -> None:
    settings = Settings(routes_dir=small_routes, index_dir=tmp_path / "no-index")

    with pytest.raises(StartupError, match=r"scripts/build_index\.py"):
        create_app(settings)


def test_app_refuses_to_start_with_a_stale_index(
    settings: Settings, write_routes: WriteRoutes, tmp_path: Path
) -> None:
    routes = copy.deepcopy(SMALL_ROUTES)
    routes["greetings"]["utterances"].append("good evening everyone")
    edited = write_routes(tmp_path / "edited", routes, SMALL_ROUTER)

    with pytest.raises(StartupError) as caught:
        create_app(settings.model_copy(update={"routes_dir": edited}))

    assert "stale" in str(caught.value)
    assert "scripts/build_index.py" in str(caught.value)


def test_app_serves_a_stale_index_when_configured_to_warn(
    make_client: MakeClient, write_routes: WriteRoutes, tmp_path: Path
) -> None:
    routes = copy.deepcopy(SMALL_ROUTES)
    routes["greetings"]["utterances"].append("good evening everyone")
    edited = write_routes(tmp_path / "edited", routes, SMALL_ROUTER)

    client = make_client(routes_dir=edited, stale_index="warn")

    assert client.post("/route", json={"prompt": CODING_PROMPT}).json()["route"] == "coding"


def test_app_refuses_to_start_with_a_broken_route_file(settings: Settings, tmp_path: Path) -> None:
    (settings.routes_dir / "cooking.yaml").write_text("model: [broken\n", encoding="utf-8")

    with pytest.raises(StartupError) as caught:
        create_app(settings)

    assert "cooking.yaml" in str(caught.value)
    assert "not valid YAML" in str(caught.value)
