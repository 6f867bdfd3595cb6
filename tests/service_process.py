"""Real server processes for the end-to-end tests: a free port, start, wait for 200, stop.

One copy for every test module that runs ``python -m service`` (or the local LLM) over real
HTTP on 127.0.0.1; each process is always stopped, and a start that fails shows the server's
log in the failure.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO_ROOT, offline_env

READY_TIMEOUT_S = 120
"""Only stops a hung test: loading the encoder on a busy 2-core machine takes seconds."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(command: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``command`` from the repository root, offline, with ``env`` added, output to ``log``."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env=offline_env(**env), stdout=sink, stderr=subprocess.STDOUT
        )


def start_service(port: int, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """The service on 127.0.0.1:``port``, configured by ``env`` (SEMROUTE_* variables)."""
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    return start([*command, *args], log, **env)


def wait_until_ok(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = READY_TIMEOUT_S
) -> None:
    """Return once ``url`` answers 200; fail with the log if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer 200 within {timeout}s:\n{log.read_text()[-3000:]}")


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    wait_until_ok(f"{base_url}/readyz", process, log)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextmanager
def running_service(log: Path, *args: str, **env: str) -> Iterator[str]:
    """``python -m service`` on a free port with ``env``; yields its URL once ready."""
    port = free_port()
    process = start_service(port, log, *args, **env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(process, url, log)
        yield url
    finally:
        stop(process)
