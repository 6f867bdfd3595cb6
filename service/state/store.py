"""The state-store interface: what the router, the completion chain and feedback remember.

Four kinds of state outlive a request: the route of each conversation (stickiness), the
latency average of each model (``max_latency_ms``), the recent decisions that ``/feedback``
accepts, and the cooldowns of failing models. One replica keeps them in process
(``LocalState``); replicas behind a load balancer share them through Redis (``RedisState``).
The store belongs to the app, not to the engine, so a reload keeps it.

Every method is a coroutine except ``remember_decision``, which never waits: a decision is
remembered on every ``/route``, and the hot path must not pay a network round trip for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.config.routes import CooldownPolicy


@dataclass(frozen=True)
class Remembered:
    """What feedback needs to know of a decision."""

    route: str
    model: str


@dataclass
class StateCounters:
    """Counts a store keeps for /metrics: shared-state failures by operation, cooldowns
    started by model (by this replica; Prometheus sums them over replicas)."""

    errors: Counter[str] = field(default_factory=Counter)
    cooldowns_started: Counter[str] = field(default_factory=Counter)


class StateStore(Protocol):
    """The four kinds of state, one small interface; see the module docstring."""

    counters: StateCounters
    shared: bool
    """True when other replicas see this state (Redis), False for in-process state."""

    async def conversation_route(self, conversation_id: str) -> str | None:
        """The route of the conversation's last decision, None for a new conversation."""
        ...

    async def keep_conversation_route(self, conversation_id: str, route: str) -> None: ...

    async def observe_latency(self, model: str, latency_ms: float) -> None:
        """Fold one observed call latency into the model's moving average."""
        ...

    async def latencies(self, models: Sequence[str]) -> dict[str, float]:
        """The moving average of each of ``models`` that has been observed."""
        ...

    def remember_decision(self, decision_id: str, remembered: Remembered) -> None:
        """Remember a decision for feedback; never waits (shared later, in the background)."""
        ...

    async def recall_decision(self, decision_id: str) -> Remembered | None: ...

    async def record_failure(self, model: str, policy: CooldownPolicy) -> bool:
        """Count a failure of ``model``; True when it starts the model's cooldown."""
        ...

    async def cooldowns(self, models: Iterable[str]) -> dict[str, float]:
        """Seconds of cooldown left for each of ``models`` that is cooling down."""
        ...

    async def close(self) -> None: ...
