"""Prometheus metrics of one app: decisions, completions, tokens, cost, tie-breaker, batching,
cooldowns and shared-state errors.

Every series is per replica; Prometheus aggregates replicas (``sum by (...)``) itself.

Every app owns its own ``CollectorRegistry`` (tests build many apps in one process, and the
global registry refuses a second metric of the same name). Tie-breaker outcomes are read
from the serving tie-breaker's own counter at scrape time rather than duplicated here, so
they restart from zero when a reload builds a new engine (Prometheus reads that as a reset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.completion.chain import Attempt, ChainResult
from service.routing.types import Decision
from service.state.store import StateCounters

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
COMPLETION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


def answering_attempt(result: ChainResult) -> Attempt | None:
    """The chain's attempt whose answer was served (a review only edits it)."""
    return next((a for a in result.attempts if a.outcome == "ok" and a.role != "review"), None)


class TiebreakerCollector(Collector):
    """``semroute_tiebreaker_calls_total{outcome}``, read from ``LLMTiebreaker.outcomes``."""

    def __init__(self, outcomes: Callable[[], Mapping[str, int]]):
        self._outcomes = outcomes

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "semroute_tiebreaker_calls",
            "Tie-breaker consultations by outcome (picked, none, invalid, error, timeout, "
            "cache_hit, missing_api_key).",
            labels=["outcome"],
        )
        for outcome, count in sorted(self._outcomes().items()):
            family.add_metric([outcome], count)
        yield family


class BatchingCollector(Collector):
    """The micro-batcher's own counters (``MicroBatcher.batches``, ``items``, ``largest``).

    Mean batch size is batched_prompts / batches: how much concurrent traffic shares encoder
    calls. Like the tie-breaker's, they restart from zero when a reload builds a new engine.
    """

    def __init__(self, counts: Callable[[], Mapping[str, int]]):
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        yield CounterMetricFamily(
            "semroute_encoder_batches",
            "Encoder calls made by the micro-batcher.",
            value=counts.get("batches", 0),
        )
        yield CounterMetricFamily(
            "semroute_encoder_batched_prompts",
            "Prompts encoded through the micro-batcher.",
            value=counts.get("items", 0),
        )
        yield GaugeMetricFamily(
            "semroute_encoder_largest_batch",
            "Most prompts one encoder call has served.",
            value=counts.get("largest", 0),
        )


class StateCollector(Collector):
    """The state store's own counters (``StateStore.counters``), read at scrape time."""

    def __init__(self, counters: Callable[[], StateCounters]):
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        counters = self._counters()
        errors = CounterMetricFamily(
            "semroute_shared_state_errors",
            "Calls to the shared state (Redis) that failed or timed out and were served from "
            "this replica's own state instead, by operation.",
            labels=["operation"],
        )
        for operation, count in sorted(counters.errors.items()):
            errors.add_metric([operation], count)
        yield errors
        started = CounterMetricFamily(
            "semroute_cooldowns_started",
            "Cooldowns of failing models started by this replica, by model.",
            labels=["model"],
        )
        for model, count in sorted(counters.cooldowns_started.items()):
            started.add_metric([model], count)
        yield started


class Metrics:
    """The service's metrics, registered in a registry of their own."""

    def __init__(
        self,
        tiebreaker_outcomes: Callable[[], Mapping[str, int]] | None = None,
        batching: Callable[[], Mapping[str, int]] | None = None,
        state_counters: Callable[[], StateCounters] | None = None,
    ):
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "semroute_decisions",
            "Routing decisions by route, method and endpoint.",
            ["route", "method", "endpoint"],
            registry=r,
        )
        self.decision_seconds = Histogram(
            "semroute_decision_seconds",
            "Time to decide a route.",
            ["method"],
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "semroute_completion_requests",
            "Completion requests by route and result (ok or failed).",
            ["route", "result"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "semroute_completion_request_seconds",
            "End-to-end time of a completion request, fallbacks included.",
            ["route"],
            buckets=COMPLETION_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "semroute_completions",
            "Model calls by model, role and outcome (ok, error, timeout, bad_answer, skipped).",
            ["model", "role", "outcome"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "semroute_completion_seconds",
            "Time of one model call.",
            ["model"],
            buckets=COMPLETION_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "semroute_tokens",
            "Tokens reported by model calls, by model and kind (prompt or completion).",
            ["model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "semroute_cost_usd",
            "Cost of model calls in USD (litellm's cost map), by model.",
            ["model"],
            registry=r,
        )
        self.fallbacks = Counter(
            "semroute_fallbacks",
            "Requests answered by a model other than the route's own, by route.",
            ["route"],
            registry=r,
        )
        self.cooldown_seconds = Gauge(
            "semroute_model_cooldown_seconds",
            "Seconds a model stays skipped after repeated failures (0 when it is not).",
            ["model"],
            registry=r,
        )
        if tiebreaker_outcomes is not None:
            r.register(TiebreakerCollector(tiebreaker_outcomes))
        if state_counters is not None:
            r.register(StateCollector(state_counters))
        if batching is not None:
            r.register(BatchingCollector(batching))

    def decided(self, decision: Decision, endpoint: str) -> None:
        self.decisions.labels(decision.route, decision.method, endpoint).inc()
        self.decision_seconds.labels(decision.method).observe(decision.latency_ms / 1000)

    def completed(self, decision: Decision, result: ChainResult, seconds: float) -> None:
        self.requests.labels(decision.route, "ok" if result.ok else "failed").inc()
        self.request_seconds.labels(decision.route).observe(seconds)
        for attempt in result.attempts:
            self.attempts.labels(attempt.model, attempt.role, attempt.outcome).inc()
            if attempt.outcome != "skipped":
                self.attempt_seconds.labels(attempt.model).observe(attempt.latency_ms / 1000)
            usage = attempt.usage or {}
            for kind in ("prompt", "completion"):
                tokens = usage.get(f"{kind}_tokens", 0)
                if tokens:
                    self.tokens.labels(attempt.model, kind).inc(tokens)
            if attempt.cost_usd:
                self.cost.labels(attempt.model).inc(attempt.cost_usd)
        answered = answering_attempt(result)
        if answered is not None and answered.role != "primary":
            self.fallbacks.labels(decision.route).inc()

    def exposition(self, cooldowns: Mapping[str, float] | None = None) -> bytes:
        """The Prometheus text format of every metric; ``cooldowns``: seconds left per model
        (every configured model, so a cooldown that ended reads 0 rather than vanishing)."""
        for model, left in (cooldowns or {}).items():
            self.cooldown_seconds.labels(model).set(round(left, 3))
        return generate_latest(self.registry)
