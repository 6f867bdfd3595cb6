"""In-process state: bounded LRU maps, moving averages and cooldowns of one replica.

Used alone when no Redis is configured, and by ``RedisState`` as the fallback it writes
through to, so a replica whose Redis is unreachable keeps what it saw itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from service.config.lru import LRU
from service.config.routes import CooldownPolicy
from service.state.cooldown import CooldownBook
from service.state.store import Remembered, StateCounters

LATENCY_ALPHA = 0.2
"""Weight of a new latency sample in the moving average (about the last 5-10 calls)."""


def moving_average(previous: float | None, sample: float, alpha: float = LATENCY_ALPHA) -> float:
    """Exponentially weighted moving average; the first sample stands alone."""
    return sample if previous is None else alpha * sample + (1 - alpha) * previous


class LocalState:
    """``StateStore`` in process memory: fast, bounded, per replica, lost at restart."""

    shared = False

    def __init__(
        self,
        max_conversations: int = 10_000,
        max_decisions: int = 10_000,
        clock: Callable[[], float] | None = None,
    ):
        self.counters = StateCounters()
        self.conversations: LRU[str, str] = LRU(max_conversations)
        self.decisions: LRU[str, Remembered] = LRU(max_decisions)
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
