"""End to end: the CLI builds an index, ``python -m service`` serves it over real HTTP."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import (
    CODING_PROMPT,
    COOKING_PROMPT,
    FAR_PROMPT,
    REPO_ROOT,
    CliBuild,
    offline_env,
)
from service_process import free_port, running_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service_url(cli_build: CliBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``python -m service`` process serving the CLI-built index; stopped at teardown."""
    assert cli_build.result.returncode == 0, cli_build.result.stderr
    log = tmp_path_factory.mktemp("e2e") / "service.log"
    with running_service(
        log, SEMROUTE_ROUTES_DIR=str(cli_build.routes), SEMROUTE_INDEX_DIR=str(cli_build.index)
    ) as url:
        yield url


@pytest.mark.parametrize(
    ("prompt", "route", "method"),
    [
        (CODING_PROMPT, "coding", "semantic"),
        (COOKING_PROMPT, "cooking", "semantic"),
        (FAR_PROMPT, "greetings", "default"),
    ],
)
def test_served_router_routes_prompts_over_http(
    service_url: str, prompt: str, route: str, method: str
) -> None:
    response = httpx.post(f"{service_url}/route", json={"prompt": prompt}, timeout=30)

    assert response.status_code == 200, response.text
    assert response.json()["route"] == route
    assert response.json()["method"] == method


def test_served_router_reports_the_index_it_serves(service_url: str, cli_build: CliBuild) -> None:
    ready = httpx.get(f"{service_url}/readyz", timeout=10).json()
    routes = httpx.get(f"{service_url}/routes", timeout=10).json()

    assert ready["vectors"] == 17
    assert [route["name"] for route in routes] == ["coding", "cooking", "greetings"]


def test_served_router_answers_errors_as_json(service_url: str) -> None:
    response = httpx.post(f"{service_url}/route", json={"prompt": ""}, timeout=10)

    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request"


def test_service_without_an_index_exits_naming_the_build_command(
    cli_build: CliBuild, tmp_path: Path
) -> None:
    env = offline_env(
        SEMROUTE_ROUTES_DIR=str(cli_build.routes), SEMROUTE_INDEX_DIR=str(tmp_path / "none")
    )

    result = subprocess.run(
        [sys.executable, "-m", "service", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "scripts/build_index.py" in result.stderr
    assert "Traceback" not in result.stderr
