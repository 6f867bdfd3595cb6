"""End to end: the CLI builds an index, ``python -m service`` serves it over real HTTP."""

import socket
import subprocess
import sys
import time
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

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_service(routes: Path, index: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = offline_env(SEMROUTE_ROUTES_DIR=str(routes), SEMROUTE_INDEX_DIR=str(index))
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the service exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the service was not ready within {READY_TIMEOUT_S} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def service_url(cli_build: CliBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``python -m service`` process serving the CLI-built index; stopped at teardown."""
    assert cli_build.result.returncode == 0, cli_build.result.stderr
    port = _free_port()
    log = tmp_path_factory.mktemp("e2e") / "service.log"
    process = _start_service(cli_build.routes, cli_build.index, port, log)
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_ready(process, base_url, log)
        yield base_url
    finally:
        _stop(process)


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
        [sys.executable, "-m", "service", "--port", str(_free_port())],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "scripts/build_index.py" in result.stderr
    assert "Traceback" not in result.stderr
