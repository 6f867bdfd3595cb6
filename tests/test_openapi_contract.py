"""The OpenAPI document tells the truth: schemathesis, run over HTTP against a real server
with every check, finds no request the schema allows that the service refuses, no answer
outside the declared ones, and no wrong reply to an undeclared method.

This is the command a new user would run against ``make run``; completions go to the fake
OpenAI-compatible server on 127.0.0.1, so every model answers and nothing leaves the host.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import CliBuild
from fake_openai import FakeOpenAI
from servers import running_service

from service.api.contract import AUTO_MODEL

pytestmark = pytest.mark.e2e

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


def test_route_names_are_an_enum_of_the_loaded_routes(service_url: str) -> None:
    schemas = httpx.get(f"{service_url}/openapi.json").json()["components"]["schemas"]
    names = ["coding", "cooking", "greetings"]

    route = schemas["RouteRequest"]["properties"]["route"]["anyOf"]
    assert {"type": "string", "enum": names} in route
    assert schemas["ChatCompletionRequest"]["properties"]["model"]["enum"] == [AUTO_MODEL, *names]


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
    assert " 0 unique failures" in report or "failures" not in report.split("SUMMARY")[-1]
