"""The OpenAPI document tells the truth: a request the schema allows is served, one it
forbids is refused with a 4xx, and an undeclared method gets 405 with ``Allow``.

First each rule that once surprised a client, checked in process: the schema and the server
must agree on the same body. Then the check a new user would run against ``make run``:
schemathesis over HTTP against a real server with every check; completions go to the fake
OpenAI-compatible server on 127.0.0.1, so every model answers and nothing leaves the host.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CliBuild
from fake_openai import FakeOpenAI
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from service_process import running_service

from service.api.contract import AUTO_MODEL, with_route_names
from service.api.schemas import CompleteRequest
from service.routing.types import NOT_BLANK

ADMIN_KEY = "contract-admin-key"
SEED = "20261202"
"""Fixed, so that a failure found once is found again by the next run."""
ST = Path(sys.executable).with_name("st")


@pytest.fixture(scope="module")
def service_url(cli_build: CliBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert cli_build.result.returncode == 0, cli_build.result.stderr
    log = tmp_path_factory.mktemp("contract") / "service.log"
    with (
        FakeOpenAI() as fake,
        running_service(
            log,
            "--log-level",
            "warning",
            SEMROUTE_ROUTES_DIR=str(cli_build.routes),
            SEMROUTE_INDEX_DIR=str(cli_build.index),
            SEMROUTE_LLM_API_BASE=fake.api_base,
            SEMROUTE_LLM_API_KEY="fake-key",
            SEMROUTE_ADMIN_KEY=ADMIN_KEY,
        ) as url,
    ):
        yield url


def schema_accepts(document: dict[str, Any], component: str, body: Any) -> bool:
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return Draft202012Validator(schema).is_valid(body)


USER = {"role": "user", "content": "fix the type error in my python code"}
ROUTE_BODIES = {
    "prompt": ({"prompt": "fix the type error in my python code"}, 200),
    "chat": ({"messages": [USER]}, 200),
    "neither-prompt-nor-messages": ({}, 422),
    "both-prompt-and-messages": ({"prompt": "hi", "messages": [USER]}, 422),
    "blank-prompt": ({"prompt": " \t\u3000"}, 422),
    "no-user-text": ({"messages": [{"role": "system", "content": "be brief"}]}, 422),
    "unknown-route": ({"prompt": "hi", "route": "astrology"}, 400),
    "known-route": ({"prompt": "hi", "route": "cooking"}, 200),
    "zero-for-false": ({"prompt": "hi", "tiebreak": 0}, 422),
    "string-for-number": ({"prompt": "hi", "max_latency_ms": "100"}, 422),
    "image-part-and-text": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is in this picture"},
                        {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
                    ],
                }
            ]
        },
        200,
    ),
    "file-part-without-file": (
        {"messages": [USER, {"role": "user", "content": [{"type": "file"}]}]},
        422,
    ),
    "unknown-part-type": (
        {"messages": [USER, {"role": "user", "content": [{"type": "hologram"}]}]},
        422,
    ),
    "developer-message-without-content": ({"messages": [USER, {"role": "developer"}]}, 422),
    "assistant-message-without-content": ({"messages": [{"role": "assistant"}, USER]}, 200),
}


@pytest.mark.parametrize(("body", "status"), ROUTE_BODIES.values(), ids=ROUTE_BODIES.keys())
def test_the_schema_and_the_server_agree_on_a_route_request(
    client: TestClient, body: dict[str, Any], status: int
) -> None:
    document = client.get("/openapi.json").json()

    response = client.post("/route", json=body)

    assert response.status_code == status, response.text
    assert schema_accepts(document, "RouteRequest", body) is (status == 200)


def test_not_blank_means_what_str_strip_means_for_every_character() -> None:
    disagree = [
        hex(code)
        for code in range(0x110000)
        if (re.search(NOT_BLANK, chr(code)) is None) != chr(code).isspace()
    ]
    assert disagree == []


def test_a_whole_float_is_an_integer_as_json_schema_says() -> None:
    assert CompleteRequest.model_validate({"prompt": "hi", "max_tokens": 5.0}).max_tokens == 5
    with pytest.raises(ValueError, match="max_tokens"):
        CompleteRequest.model_validate({"prompt": "hi", "max_tokens": True})


def test_an_undeclared_method_is_405_with_the_allowed_ones(client: TestClient) -> None:
    response = client.request("TRACE", "/route")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["type"] == "method_not_allowed"


def test_the_admin_key_and_the_event_stream_are_declared(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert paths["/admin/reload"]["post"]["security"] == [{"adminKey": []}]
    assert "security" not in paths["/route"]["post"], "no API keys are configured"
    chat = paths["/v1/chat/completions"]["post"]["responses"]
    assert set(chat["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"502", "504"} <= set(chat) and {"502", "504"} <= set(
        paths["/complete"]["post"]["responses"]
    )


def test_route_names_follow_the_routes_given() -> None:
    document = {
        "components": {
            "schemas": {
                "RouteRequest": {
                    "properties": {"route": {"anyOf": [{"type": "string"}, {"type": "null"}]}}
                },
                "ChatCompletionRequest": {"properties": {"model": {"type": "string"}}},
            }
        }
    }

    named = with_route_names(document, ["a", "b"])

    assert named["components"]["schemas"]["RouteRequest"]["properties"]["route"]["anyOf"] == [
        {"type": "string", "enum": ["a", "b"]},
        {"type": "null"},
    ]
    assert named["components"]["schemas"]["ChatCompletionRequest"]["properties"]["model"][
        "enum"
    ] == [AUTO_MODEL, "a", "b"]
    assert (
        "enum"
        not in document["components"]["schemas"]["ChatCompletionRequest"]["properties"]["model"]
    ), "the generic document is left as it was"


@pytest.mark.e2e
def test_route_names_are_an_enum_of_the_loaded_routes(service_url: str) -> None:
    schemas = httpx.get(f"{service_url}/openapi.json").json()["components"]["schemas"]
    names = ["coding", "cooking", "greetings"]

    route = schemas["RouteRequest"]["properties"]["route"]["anyOf"]
    assert {"type": "string", "enum": names} in route
    assert schemas["ChatCompletionRequest"]["properties"]["model"]["enum"] == [AUTO_MODEL, *names]


@pytest.mark.e2e
def test_schemathesis_finds_nothing_with_every_check(service_url: str, tmp_path: Path) -> None:
    command = [
        str(ST),
        "run",
        f"{service_url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        SEED,
        "--generation-database",
        "none",
        "--header",
        f"Authorization: Bearer {ADMIN_KEY}",
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-12000:]
    assert "No issues found" in report, report[-3000:]
