"""The Redis state store against a real redis-server: shared between stores (as between
replicas), namespaced, bounded, and never failing a call when Redis is down or slow."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable

import pytest
from redis_server import RedisServer, redis_server_fixture  # noqa: F401

from service.config.routes import CooldownPolicy
from service.state.local import LocalState
from service.state.redis_state import RedisState
from service.state.store import Remembered

prefixes = itertools.count()
MakeStore = Callable[..., RedisState]


@pytest.fixture(name="make_store")
async def make_store_fixture(redis_server: RedisServer) -> AsyncIterator[MakeStore]:
    """``make_store(**options)`` -> a RedisState on the module's server; all share a prefix."""
    prefix = f"test{next(prefixes)}:"
    stores: list[RedisState] = []

    def make(
        url: str = redis_server.url, max_conversations: int = 100, **options: object
    ) -> RedisState:
        options = {"prefix": prefix, "timeout_s": 2.0, **options}
        store = RedisState(url, LocalState(max_conversations, 100), **options)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def test_replicas_share_every_kind_of_state(make_store: MakeStore) -> None:
    a, b = make_store(), make_store()
    policy = CooldownPolicy(allowed_fails=1, cooldown_s=60)

    await a.keep_conversation_route("c1", "coding")
    await a.observe_latency("m", 100)
    await b.observe_latency("m", 200)
    a.remember_decision("d1", Remembered("coding", "m"))
    await a.flush()
    assert await a.record_failure("m", policy) is False
    assert await b.record_failure("m", policy) is True, "the second failure, on another replica"

    assert await b.conversation_route("c1") == "coding"
    assert await a.latencies(["m", "n"]) == {"m": pytest.approx(120)}
    assert await b.recall_decision("d1") == Remembered("coding", "m")
    assert 59 < (await a.cooldowns(["m", "n"]))["m"] <= 60
    assert set(await a.cooldowns(["m", "n"])) == {"m"}
    assert b.counters.cooldowns_started == {"m": 1}
    assert not a.counters.errors and not b.counters.errors


async def test_keys_carry_the_prefix_and_expire(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    client.flushdb()
    store = make_store(ttl_s=30)
    await store.keep_conversation_route("c1", "coding")
    await store.observe_latency("m", 100)

    keys = client.keys("*")
    assert keys and all(key.startswith(store.prefix) for key in keys)
    assert 0 < client.pttl(store.key("conversation", "c1")) <= 30_000
    assert 0 < client.pttl(store.key("latency", "m")) <= 30_000


async def test_conversations_in_redis_are_capped_oldest_first(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    store = make_store(max_conversations=3)
    reader = make_store(max_conversations=3)

    for number in range(5):
        await store.keep_conversation_route(f"c{number}", "coding")

    assert [await reader.conversation_route(f"c{n}") for n in range(5)] == [
        None,
        None,
        "coding",
        "coding",
        "coding",
    ]
    assert redis_server.client().zcard(store.key("conversation")) == 3


async def test_redis_down_falls_back_to_local_state_then_recovers(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path_factory.mktemp("redis-down"))
    server.start()
    store = RedisState(server.url, LocalState(), timeout_s=2.0, retry_s=0.05)
    try:
        await store.keep_conversation_route("c1", "coding")
        server.kill()

        with caplog.at_level(logging.WARNING, logger="semroute"):
            await store.keep_conversation_route("c2", "cooking")
            await asyncio.sleep(0.06)
            assert await store.conversation_route("c2") == "cooking", "from local state"
            assert await store.conversation_route("c1") == "coding"

        assert sum(store.counters.errors.values()) >= 2
        assert [r.message for r in caplog.records].count(
            next(r.message for r in caplog.records if "unavailable" in r.message)
        ) == 1, "logged once"

        server.start()
        await asyncio.sleep(0.06)
        other = RedisState(server.url, LocalState(), timeout_s=2.0)
        await store.keep_conversation_route("c3", "coding")
        assert await other.conversation_route("c3") == "coding", "shared again"
        await other.close()
    finally:
        await store.close()
        server.kill()


async def test_a_hanging_redis_costs_one_short_timeout_not_a_failure(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    store = make_store(timeout_s=0.1, retry_s=60)
    await store.keep_conversation_route("c1", "coding")
    hang = threading.Thread(
        target=lambda: redis_server.client().execute_command("DEBUG", "SLEEP", 1)
    )
    hang.start()
    await asyncio.sleep(0.1)
    try:
        assert await store.conversation_route("c1") == "coding", "from local state"
        assert store.counters.errors == {"conversation_route": 1}
        assert await store.latencies(["m"]) == {}, "Redis left alone for retry_s"
        assert store.counters.errors == {"conversation_route": 1}
    finally:
        await asyncio.to_thread(hang.join)
