"""In-process state: bounded maps, moving averages and cooldowns of one replica.

Used alone when no Redis is configured, and by ``RedisState`` as the fallback it writes
through to, so a replica whose Redis is unreachable keeps what it saw itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from service.config.routes import CooldownPolicy
from service.state.cooldown import CooldownBook
from service.state.store import Remembered, StateCounters

V = TypeVar("V")
LATENCY_ALPHA = 0.2
"""Weight of a new latency sample in the moving average (about the last 5-10 calls)."""


def moving_average(previous: float | None, sample: float, alpha: float = LATENCY_ALPHA) -> float:
    """Exponentially weighted moving average; the first sample stands alone."""
    return sample if previous is None else alpha * sample + (1 - alpha) * previous


class BoundedMap(Generic[V]):
    """A least-recently-used map of at most ``max_size`` entries (0 keeps nothing)."""

    def __init__(self, max_size: int):
        self.max_size = max_size
        self._items: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        if self.max_size <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)


class LocalState:
    """``StateStore`` in process memory: fast, bounded, per replica, lost at restart.

    Only ever used from the event loop, so it needs no lock.
    """

    shared = False

    def __init__(
        self,
        max_conversations: int = 10_000,
        max_decisions: int = 10_000,
        clock: Callable[[], float] | None = None,
    ):
        self.counters = StateCounters()
        self.conversations: BoundedMap[str] = BoundedMap(max_conversations)
        self.decisions: BoundedMap[Remembered] = BoundedMap(max_decisions)
        self._latency: dict[str, float] = {}
        self.cooldown_book = CooldownBook(clock) if clock else CooldownBook()

    async def conversation_route(self, conversation_id: str) -> str | None:
        return self.conversations.get(conversation_id)

    async def keep_conversation_route(self, conversation_id: str, route: str) -> None:
        self.conversations.put(conversation_id, route)

    async def observe_latency(self, model: str, latency_ms: float) -> None:
        self._latency[model] = moving_average(self._latency.get(model), latency_ms)

    async def latencies(self, models: Sequence[str]) -> dict[str, float]:
        return {m: self._latency[m] for m in models if m in self._latency}

    def remember_decision(self, decision_id: str, remembered: Remembered) -> None:
        self.decisions.put(decision_id, remembered)

    async def recall_decision(self, decision_id: str) -> Remembered | None:
        return self.decisions.get(decision_id)

    async def record_failure(self, model: str, policy: CooldownPolicy) -> bool:
        started = self.cooldown_book.failed(model, policy)
        if started:
            self.counters.cooldowns_started[model] += 1
        return started

    async def cooldowns(self, models: Iterable[str]) -> dict[str, float]:
        return self.cooldown_book.remaining(models)

    async def close(self) -> None:
        pass
