"""Shared state in Redis, for replicas behind a load balancer (``SEMROUTE_REDIS_URL``).

redis-py's asyncio client over a blocking connection pool. Every key starts with the
configured prefix. Memory is bounded: conversations and decisions expire after
``state_ttl_s`` and each kind is capped at its configured count by a sorted-set index
(oldest evicted first, in the same script that writes); latency averages expire after
``state_ttl_s``, failure counters and cooldowns after their own window.

Redis never fails a request. Each call has a short timeout; on any error the store answers
from the in-process ``LocalState`` it writes through to, logs once, counts the error
(``counters.errors``, exposed as ``semroute_shared_state_errors_total``) and leaves Redis
alone for ``retry_s`` before trying again, so a dead Redis costs one timeout per
``retry_s``, not one per request, and a restarted one is picked up without a restart.

Decisions are remembered on every ``/route``; they reach Redis in batches written behind
the requests (one script call per ``flush_s``), so ``/route`` without a conversation id or
latency limit makes no Redis call of its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from service.config.routes import CooldownPolicy
from service.state.local import LATENCY_ALPHA, LocalState
from service.state.store import Remembered, StateCounters

log = logging.getLogger("semroute")
T = TypeVar("T")
FLUSH_S = 0.05
MAX_BATCH = 500

# KEYS: index, item...; ARGV: ttl_ms, now_ms, max_items, value...
PUT_BOUNDED = """
local ttl, now, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ttl)
  redis.call('ZADD', KEYS[1], now, KEYS[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local excess = redis.call('ZCARD', KEYS[1]) - cap
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
  redis.call('DEL', unpack(old))
end
redis.call('PEXPIRE', KEYS[1], ttl)
return excess
"""
# KEYS: average; ARGV: sample, alpha, ttl_ms
MOVING_AVERAGE = """
local x, a = tonumber(ARGV[1]), tonumber(ARGV[2])
local previous = redis.call('GET', KEYS[1])
if previous then x = a * x + (1 - a) * tonumber(previous) end
redis.call('SET', KEYS[1], tostring(x), 'PX', ARGV[3])
return tostring(x)
"""
# KEYS: failure counter, cooldown; ARGV: window_ms, allowed_fails, cooldown_ms
FAILED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], n, 'PX', ARGV[3])
  return 1
end
return 0
"""


class RedisState:
    """``StateStore`` in Redis, falling back to (and writing through to) ``local``."""

    shared = True

    def __init__(
        self,
        url: str,
        local: LocalState,
        prefix: str = "semroute:",
        ttl_s: float = 86_400.0,
        timeout_s: float = 0.25,
        retry_s: float = 1.0,
        max_connections: int = 32,
    ):
        self.local = local
        self.counters = StateCounters()
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._ttl_ms = int(ttl_s * 1000)
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # one immediate retry: a pooled connection that a Redis restart closed reconnects
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
        self.client = Redis(connection_pool=pool)
        self._put_bounded = self.client.register_script(PUT_BOUNDED)
        self._moving_average = self.client.register_script(MOVING_AVERAGE)
        self._failed = self.client.register_script(FAILED)
        self._retry_at = 0.0
        self._down = False
        self._pending: list[tuple[str, Remembered]] = []
        self._flusher: asyncio.Task[None] | None = None

    def key(self, kind: str, name: str = "") -> str:
        return f"{self.prefix}{kind}:{name}" if name else f"{self.prefix}{kind}"

    async def _guard(self, operation: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        """``call()``'s result, or ``fallback`` when Redis fails, is slow or was just down."""
        if time.monotonic() < self._retry_at:
            return fallback
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await call()
        except (RedisError, OSError, TimeoutError) as error:
            self.counters.errors[operation] += 1
            self._retry_at = time.monotonic() + self.retry_s
            if not self._down:
                self._down = True
                log.warning(
                    "shared state in Redis unavailable (%s: %s); serving from this "
                    "replica's own state until it is back",
                    type(error).__name__,
                    error,
                )
            return fallback
        if self._down:
            self._down = False
            log.warning("shared state in Redis is reachable again")
        return result

    async def _put(self, kind: str, cap: int, items: Sequence[tuple[str, str]]) -> None:
        if cap <= 0 or not items:
            return
        keys = [self.key(kind), *(self.key(kind, name) for name, _ in items)]
        args: list[str | int] = [self._ttl_ms, int(time.time() * 1000), cap]
        args += [value for _, value in items]
        await self._put_bounded(keys=keys, args=args)

    async def conversation_route(self, conversation_id: str) -> str | None:
        local = await self.local.conversation_route(conversation_id)

        async def read() -> str | None:
            value = await self.client.get(self.key("conversation", conversation_id))
            return None if value is None else str(value)

        shared = await self._guard("conversation_route", read, local)
        return shared if shared is not None else local

    async def keep_conversation_route(self, conversation_id: str, route: str) -> None:
        await self.local.keep_conversation_route(conversation_id, route)
        cap = self.local.conversations.max_size
        await self._guard(
            "keep_conversation_route",
            lambda: self._put("conversation", cap, [(conversation_id, route)]),
            None,
        )

    async def observe_latency(self, model: str, latency_ms: float) -> None:
        await self.local.observe_latency(model, latency_ms)
        await self._guard(
            "observe_latency",
            lambda: self._moving_average(
                keys=[self.key("latency", model)], args=[latency_ms, LATENCY_ALPHA, self._ttl_ms]
            ),
            None,
        )

    async def latencies(self, models: Sequence[str]) -> dict[str, float]:
        local = await self.local.latencies(models)
        if not models:
            return local

        async def read() -> dict[str, float]:
            values = await self.client.mget([self.key("latency", m) for m in models])
            return {m: float(v) for m, v in zip(models, values, strict=True) if v is not None}

        return {**local, **await self._guard("latencies", read, {})}

    def remember_decision(self, decision_id: str, remembered: Remembered) -> None:
        self.local.remember_decision(decision_id, remembered)
        if self.local.decisions.max_size <= 0:
            return
        self._pending.append((decision_id, remembered))
        if self._flusher is None or self._flusher.done():
            try:
                self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())
            except RuntimeError:  # no event loop (a synchronous caller): keep it local
                self._pending.clear()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_S)
        await self.flush()

    async def flush(self) -> None:
        """Write the decisions remembered since the last flush to Redis."""
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            items = [(i, f"{r.route}\t{r.model}") for i, r in batch]
            cap = self.local.decisions.max_size
            write = functools.partial(self._put, "decision", cap, items)
            await self._guard("remember_decision", write, None)

    async def recall_decision(self, decision_id: str) -> Remembered | None:
        local = await self.local.recall_decision(decision_id)
        if local is not None:  # made here: no need to ask
            return local

        async def read() -> Remembered | None:
            value = await self.client.get(self.key("decision", decision_id))
            if value is None:
                return None
            route, _, model = str(value).partition("\t")
            return Remembered(route, model)

        return await self._guard("recall_decision", read, None)

    async def record_failure(self, model: str, policy: CooldownPolicy) -> bool:
        local = self.local.cooldown_book.failed(model, policy)
        if policy.cooldown_s <= 0:
            return False
        window_ms, cooldown_ms = int(policy.window_s * 1000), int(policy.cooldown_s * 1000)

        async def count() -> bool:
            started = await self._failed(
                keys=[self.key("failures", model), self.key("cooldown", model)],
                args=[window_ms, policy.allowed_fails, cooldown_ms],
            )
            return bool(started)

        started = await self._guard("record_failure", count, local)
        if started:
            self.counters.cooldowns_started[model] += 1
        return started

    async def cooldowns(self, models: Iterable[str]) -> dict[str, float]:
        names = list(models)
        local = await self.local.cooldowns(names)
        if not names:
            return local

        async def read() -> dict[str, float]:
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.pttl(self.key("cooldown", name))
                left: list[Any] = await pipe.execute()
            return {m: ms / 1000 for m, ms in zip(names, left, strict=True) if int(ms) > 0}

        return await self._guard("cooldowns", read, local)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()
        await self.client.aclose()
