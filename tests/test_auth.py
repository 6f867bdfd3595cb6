"""Bearer-key authentication: probes open, everything else keyed, admin separately keyed;
and no provider key or prompt text in logs or error messages."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient
from llm_fixtures import (  # noqa: F401
    API_ROUTES,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)
from pydantic import SecretStr

from service.api import auth
from service.api.app import create_app
from service.config.settings import Settings
from service.encoding.encoder import Encoder

KEYS = "key-one,key-two"
ADMIN = "the-admin-key"
MakeKeyed = Callable[..., TestClient]


@pytest.fixture
def keyed(settings: Settings, encoder: Encoder) -> Iterator[MakeKeyed]:
    with ExitStack() as stack:

        def make(**overrides: Any) -> TestClient:
            secrets = {name: SecretStr(value) for name, value in overrides.items()}
            app = create_app(settings.model_copy(update=secrets), encoder=encoder)
            return stack.enter_context(TestClient(app))

        yield make


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_refused(response: Any, status: int, type_: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == type_
    assert set(response.json()) == {"error"}


def test_probes_answer_without_a_key(keyed: MakeKeyed) -> None:
    client = keyed(api_keys=KEYS, admin_key=ADMIN)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_every_other_endpoint_needs_a_valid_bearer_key(keyed: MakeKeyed) -> None:
    client = keyed(api_keys=KEYS)
    body = {"prompt": "hello there", "tiebreak": False}
    for headers in ({}, bearer("wrong"), {"Authorization": "Basic a2V5LW9uZQ=="}, bearer("")):
        response = client.post("/route", json=body, headers=headers)
        assert_refused(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    for path in ("/routes", "/openapi.json", "/docs", "/no-such-path", "/metrics"):
        assert_refused(client.get(path), 401, "unauthorized")
    assert client.post("/route", json=body, headers=bearer("key-one")).status_code == 200
    assert client.post("/route", json=body, headers=bearer("key-two")).status_code == 200
    assert client.get("/routes", headers=bearer("key-two")).status_code == 200


def test_without_keys_configured_everything_but_admin_is_open(keyed: MakeKeyed) -> None:
    client = keyed()
    assert client.get("/routes").status_code == 200
    response = client.post("/admin/reload")
    assert_refused(response, 403, "admin_disabled")
    assert "SEMROUTE_ADMIN_KEY" in response.json()["error"]["message"]


def test_admin_endpoints_are_off_without_an_admin_key_even_with_api_keys(
    keyed: MakeKeyed,
) -> None:
    client = keyed(api_keys=KEYS)
    assert_refused(client.post("/admin/reload", headers=bearer("key-one")), 403, "admin_disabled")


def test_admin_endpoints_need_the_admin_key_not_an_api_key(keyed: MakeKeyed) -> None:
    client = keyed(api_keys=KEYS, admin_key=ADMIN)
    assert_refused(client.post("/admin/reload", headers=bearer("key-one")), 401, "unauthorized")
    assert_refused(client.post("/admin/reload"), 401, "unauthorized")
    response = client.post("/admin/reload", headers=bearer(ADMIN))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "reloaded"


def test_keys_are_compared_in_constant_time_against_every_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = [b"alpha", b"beta", b"gamma"]
    assert auth.key_matches(b"alpha", keys)
    assert len(compared) == 3, "a match on the first key still compares the others"
    assert not auth.key_matches(None, keys)
    assert not auth.key_matches(b"delta", keys)


def test_settings_do_not_show_keys_in_their_repr() -> None:
    settings = Settings(api_keys=KEYS, admin_key=ADMIN)
    assert "key-one" not in repr(settings) and ADMIN not in repr(settings)
    assert settings.api_key_list() == ["key-one", "key-two"]


# Provider keys and prompts stay out of logs and error messages.

SECRET_KEY = "sk-semroute-SECRET-4242"
SECRET_PROMPT = "my confidential merger plan codeword PINEAPPLE-7731"
FAILING_ROUTES = {
    **API_ROUTES,
    "chitchat": {
        **API_ROUTES["chitchat"],
        "model": "openai/e500-x",
        "fallbacks": ["openai/garbage-x", "openai/drop-x", "openai/e429-x"],
    },
}


def test_provider_keys_and_prompts_never_reach_logs_or_errors(
    make_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    caplog.set_level(logging.INFO)
    client = make_client(routes=FAILING_ROUTES, llm_api_key=SECRET_KEY)
    texts = []
    for body in (
        {"prompt": SECRET_PROMPT, "route": "chitchat"},
        {"messages": [{"role": "user", "content": SECRET_PROMPT}], "route": "chitchat"},
        {"prompt": SECRET_PROMPT, "route": "no-such-route"},
        {"prompt": SECRET_PROMPT, "temperature": 9},
    ):
        response = client.post("/complete", json=body)
        assert response.status_code in {400, 422, 502, 504}, response.text
        texts.append(response.text)
    assert (
        client.post("/complete", json={"prompt": SECRET_PROMPT, "route": "chitchat"}).status_code
        == 502
    )
    captured = capsys.readouterr()
    for text in (*texts, caplog.text, captured.out, captured.err):
        assert SECRET_KEY not in text
        assert "PINEAPPLE-7731" not in text
