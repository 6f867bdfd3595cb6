"""One place that hears about every decision and completion and tells metrics, stats and log.

Endpoints call ``monitor.decided`` after the router returns and ``monitor.completed`` after
the completer finishes; nothing in the routing or completion core knows about monitoring.
The monitor belongs to the app, not the engine, so a reload keeps its history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import Request

from service.completion.chain import ChainResult
from service.config.settings import Settings
from service.ops.decision_log import DecisionLog
from service.ops.metrics import Metrics
from service.ops.stats import Stats
from service.routing.router import Router
from service.routing.tiebreak import LLMTiebreaker
from service.routing.types import Decision, RouteRequest
from service.state.store import Remembered, StateStore


class UnknownDecisionError(LookupError):
    """Feedback named a decision that no replica remembers (never made, or long forgotten)."""


class Monitor:
    def __init__(
        self,
        settings: Settings,
        state: StateStore,
        tiebreaker_outcomes: Callable[[], Mapping[str, int]] | None = None,
        batching: Callable[[], Mapping[str, int]] | None = None,
    ):
        self.state = state
        self.metrics = Metrics(tiebreaker_outcomes, batching, lambda: state.counters)
        self.stats = Stats()
        self.log = DecisionLog(settings.decision_log, settings.log_prompts)

    def decided(self, decision: Decision, request: RouteRequest, endpoint: str) -> None:
        self.metrics.decided(decision, endpoint)
        self.stats.decided(decision.route)
        self.log.decided(decision, endpoint, request.routable_text())
        self.state.remember_decision(
            decision.decision_id, Remembered(decision.route, decision.model)
        )

    def completed(self, decision: Decision, result: ChainResult, seconds: float) -> None:
        self.metrics.completed(decision, result, seconds)
        self.stats.completed(decision.route, result, seconds * 1000)
        self.log.completed(decision, result, seconds * 1000)

    async def feedback(self, decision_id: str, rating: float, correct_route: str | None) -> str:
        """Record feedback on a recent decision; returns the route that was decided."""
        remembered = await self.state.recall_decision(decision_id)
        if remembered is None:
            where = (
                "shared by the replicas"
                if self.state.shared
                else "kept by the process that made them"
            )
            raise UnknownDecisionError(
                f"no recent decision has the id '{decision_id}' (ids are {where}, for the most "
                "recent decisions only)"
            )
        corrected = correct_route is not None and correct_route != remembered.route
        self.stats.rated(remembered.route, rating, corrected)
        self.log.feedback(decision_id, remembered.route, rating, correct_route)
        return remembered.route

    def report(self, configured_models: Iterable[str]) -> dict[str, Any]:
        return self.stats.report(configured_models)


CurrentRouter = Callable[[], Router | None]


def tiebreaker_outcomes(current_router: CurrentRouter) -> Callable[[], Mapping[str, int]]:
    """Reads the outcome counter of whichever router serves now (None before start-up)."""

    def read() -> Mapping[str, int]:
        router = current_router()
        tiebreaker = router.tiebreaker if router is not None else None
        return dict(tiebreaker.outcomes) if isinstance(tiebreaker, LLMTiebreaker) else {}

    return read


def batching_counts(current_router: CurrentRouter) -> Callable[[], Mapping[str, int]]:
    """Reads the micro-batcher counters of whichever router serves now (None before start-up)."""

    def read() -> Mapping[str, int]:
        router = current_router()
        if router is None:
            return {}
        batcher = router.semantic.batcher
        return {"batches": batcher.batches, "items": batcher.items, "largest": batcher.largest}

    return read


async def current_monitor(request: Request) -> Monitor:
    """FastAPI dependency: the app's monitor (``async``, so no worker-thread hop)."""
    monitor: Monitor = request.app.state.monitor
    return monitor
