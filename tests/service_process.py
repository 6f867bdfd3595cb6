"""``python -m service`` as a real server process: start it, wait until ready, stop it."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import REPO_ROOT, offline_env
from llm_fixtures import free_port

READY_TIMEOUT_S = 90


def start_service(port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """The service on 127.0.0.1:``port``, configured by ``env`` (SEMROUTE_* variables)."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=offline_env(**env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
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


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextlib.contextmanager
def running_service(log: Path, **env: str) -> Iterator[str]:
    """The service on a free port with these ``SEMROUTE_...`` variables: yields its base URL
    once ready and stops it on exit. Its output goes to ``log``, shown if it fails to start."""
    port = free_port()
    process = start_service(port, log, **env)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_ready(process, base_url, log)
        yield base_url
    finally:
        stop(process)
