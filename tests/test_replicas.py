"""Two replicas, one behaviour: two ``python -m service`` processes on two ports share their
state through one real redis-server, and keep answering while it is gone."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_openai import FakeOpenAI
from llm_fixtures import (  # noqa: F401
    API_ROUTER,
    API_ROUTES,
    api_index_fixture,
    fake_server_fixture,
    write_route_folder,
)
from redis_server import RedisServer, redis_server_fixture  # noqa: F401
from service_process import free_port, start_service, stop, wait_until_ready

pytestmark = pytest.mark.e2e

ROUTER = {
    **API_ROUTER,
    "completion": {
        **API_ROUTER["completion"],
        "cooldown": {"allowed_fails": 1, "window_s": 600, "cooldown_s": 600},
    },
}
SETTLE_S = 15.0
"""Longest wait for something shared to show on the other replica (decisions are written
behind the requests, and a replica retries Redis a moment after it failed)."""


@dataclass(frozen=True)
class Replicas:
    a: httpx.Client
    b: httpx.Client


@pytest.fixture(scope="module")
def replicas(
    redis_server: RedisServer,
    fake_server: FakeOpenAI,
    api_index: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replicas]:
    base = tmp_path_factory.mktemp("replicas")
    routes = write_route_folder(base / "routes", API_ROUTES, ROUTER)
    env = {
        "SEMROUTE_ROUTES_DIR": str(routes),
        "SEMROUTE_INDEX_DIR": str(api_index),
        "SEMROUTE_LLM_API_BASE": fake_server.api_base,
        "SEMROUTE_REDIS_URL": redis_server.url,
        "SEMROUTE_REDIS_PREFIX": "replicas:",
        "SEMROUTE_REDIS_TIMEOUT_S": "1",
        "SEMROUTE_REDIS_RETRY_S": "0.2",
    }
    ports = free_port(), free_port()
    logs = base / "a.log", base / "b.log"
    processes = [start_service(port, log, **env) for port, log in zip(ports, logs, strict=True)]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for process, url, log in zip(processes, urls, logs, strict=True):
            wait_until_ready(process, url, log)
        with (
            httpx.Client(base_url=urls[0], timeout=30) as a,
            httpx.Client(base_url=urls[1], timeout=30) as b,
        ):
            yield Replicas(a, b)
    finally:
        for process in processes:
            stop(process)


def eventually(check: Callable[[], Any]) -> Any:
    """``check()``'s first truthy result, trying until SETTLE_S has passed."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def route(client: httpx.Client, prompt: str, conversation_id: str) -> dict[str, Any]:
    response = client.post("/route", json={"prompt": prompt, "conversation_id": conversation_id})
    assert response.status_code == 200, response.text
    return dict(response.json())


def errors_counted(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    found = re.findall(r"^semroute_shared_state_errors_total\{[^}]*\} (\S+)$", text, re.M)
    return sum(float(value) for value in found)


def test_a_conversation_started_on_one_replica_keeps_its_route_on_the_other(
    replicas: Replicas,
) -> None:
    first = route(replicas.a, "what is 12 times 7", "conv-1")

    follow_up = route(replicas.b, "and now?", "conv-1")

    assert first["route"] == "math"
    assert (follow_up["route"], follow_up["method"]) == ("math", "context")


def test_feedback_on_one_replica_for_a_decision_of_the_other_is_accepted_and_counted(
    replicas: Replicas,
) -> None:
    decision = replicas.a.post("/route", json={"prompt": "what is 12 times 7"}).json()
    rating = {"decision_id": decision["decision_id"], "rating": 0.5}

    accepted = eventually(lambda: replicas.b.post("/feedback", json=rating).status_code == 200)

    assert accepted
    stats = replicas.b.get("/stats").json()
    assert stats["routes"]["math"]["feedback"] == 1
    assert stats["scope"]["counters"].startswith("this replica")


def test_a_cooldown_started_on_one_replica_holds_on_the_other(replicas: Replicas) -> None:
    recipe = {"prompt": "hi", "route": "cooking"}
    for _ in range(2):
        assert replicas.a.post("/complete", json=recipe).status_code == 200

    answer = replicas.b.post("/complete", json=recipe).json()

    assert answer["answer"] == "answer from ok-cook"
    first = answer["attempts"][0]
    assert (first["model"], first["outcome"], first["error_type"]) == (
        "openai/e500-cook",
        "skipped",
        "cooldown",
    )
    assert "openai/e500-cook" in replicas.b.get("/stats").json()["cooldowns"]


def test_a_plain_route_request_reads_nothing_from_redis(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    """Only requests that need shared state ask Redis; decisions are written behind, batched."""
    client = redis_server.client()
    reads = ("cmdstat_get", "cmdstat_mget", "cmdstat_pttl")

    def calls() -> dict[str, int]:
        stats = client.info("commandstats")
        return {
            name: int(stats.get(name, {}).get("calls", 0)) for name in (*reads, "cmdstat_evalsha")
        }

    before = calls()
    for number in range(20):
        prompt = f"what is {number} times 7"
        assert replicas.a.post("/route", json={"prompt": prompt}).status_code == 200
    after = eventually(
        lambda: (now := calls())["cmdstat_evalsha"] > before["cmdstat_evalsha"] and now
    )

    assert {name: after[name] for name in reads} == {name: before[name] for name in reads}
    assert after["cmdstat_evalsha"] - before["cmdstat_evalsha"] <= 20


def test_without_redis_both_replicas_keep_answering_and_recover_when_it_returns(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    redis_server.kill()
    try:
        statuses = []
        for client in (replicas.a, replicas.b):
            statuses.append(route(client, "what is 12 times 7", "conv-down") and 200)
            statuses.append(client.post("/route", json={"prompt": "hello there"}).status_code)
            completed = client.post("/complete", json={"prompt": "what is 12 times 7"})
            statuses.append(completed.status_code)
            rated = client.post("/feedback", json={"decision_id": "0" * 32, "rating": 1})
            statuses.append(rated.status_code)
            chat = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
            statuses.append(client.post("/v1/chat/completions", json=chat).status_code)
        assert statuses == [200, 200, 200, 404, 200] * 2
        assert errors_counted(replicas.a) > 0
        assert errors_counted(replicas.b) > 0
    finally:
        redis_server.start()

    attempts = itertools.count()

    def shared_again() -> bool:
        conversation = f"conv-back-{next(attempts)}"  # a fresh one: no replica knows it yet
        route(replicas.a, "what is 12 times 7", conversation)
        follow_up = route(replicas.b, "and now?", conversation)
        return follow_up["method"] == "context"

    assert eventually(shared_again), "a conversation is shared again, without a restart"
