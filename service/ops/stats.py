"""Running totals behind ``GET /stats``: per route and per model since the process started.

Latency percentiles come from the most recent ``window`` samples of each route or model, so
memory stays bounded on a long-running process. The saving is estimated against sending
every answered request to the most expensive configured model with the same token counts,
priced by litellm's cost map.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import litellm
import numpy as np

from service.completion.chain import ChainResult
from service.ops.metrics import answering_attempt

LATENCY_WINDOW = 10_000


@dataclass
class _Tally:
    requests: int = 0
    successes: int = 0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def summary(self) -> dict[str, Any]:
        latencies = np.fromiter(self.latencies_ms, dtype=float)
        p50, p95 = (
            (round(float(v), 3) for v in np.percentile(latencies, [50, 95]))
            if len(latencies)
            else (None, None)
        )
        return {
            "requests": self.requests,
            "successes": self.successes,
            "success_rate": round(self.successes / self.requests, 6) if self.requests else None,
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "cost_usd": round(self.cost_usd, 8),
            "cost_per_request_usd": round(self.cost_usd / self.requests, 8)
            if self.requests
            else None,
        }


@dataclass
class _Quality:
    ratings: int = 0
    rating_sum: float = 0.0
    corrections: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "feedback": self.ratings,
            "mean_rating": round(self.rating_sum / self.ratings, 6) if self.ratings else None,
            "corrections": self.corrections,
        }


def price_per_token(model: str) -> float | None:
    """Input plus output price of one token, or None for a model litellm cannot price."""
    try:
        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=1, completion_tokens=1
        )
    except Exception:  # litellm raises for a model missing from its cost map
        return None
    return float(prompt) + float(completion)


def most_expensive(models: Iterable[str]) -> str | None:
    """The priciest model (by input + output price per token) that litellm can price."""
    priced = [(price, m) for m in set(models) if (price := price_per_token(m)) is not None]
    return max(priced)[1] if priced else None


def token_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    try:
        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:  # not in the cost map
        return None
    return float(prompt) + float(completion)


class Stats:
    """Thread-safe counters fed by the monitor; ``report`` shapes them for ``/stats``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: dict[str, int] = {}
        self._routes: dict[str, _Tally] = {}
        self._models: dict[str, _Tally] = {}
        self._quality: dict[str, _Quality] = {}

    def decided(self, route: str) -> None:
        with self._lock:
            self._decisions[route] = self._decisions.get(route, 0) + 1

    def completed(self, route: str, result: ChainResult, latency_ms: float) -> None:
        """One request: its route's tally counts it once, each model once per attempt."""
        with self._lock:
            tally = self._routes.setdefault(route, _Tally())
            tally.requests += 1
            tally.latencies_ms.append(latency_ms)
            answered = answering_attempt(result)
            if result.ok and answered is not None:
                tally.successes += 1
                usage = answered.usage or {}
                tally.prompt_tokens += usage.get("prompt_tokens", 0)
                tally.completion_tokens += usage.get("completion_tokens", 0)
            for attempt in result.attempts:
                tally.cost_usd += attempt.cost_usd or 0.0
                if attempt.outcome == "skipped":
                    continue
                model = self._models.setdefault(attempt.model, _Tally())
                model.requests += 1
                model.successes += attempt.outcome == "ok"
                model.latencies_ms.append(attempt.latency_ms)
                model.cost_usd += attempt.cost_usd or 0.0

    def rated(self, route: str, rating: float, corrected: bool) -> None:
        with self._lock:
            quality = self._quality.setdefault(route, _Quality())
            quality.ratings += 1
            quality.rating_sum += rating
            quality.corrections += corrected

    def report(self, configured_models: Iterable[str]) -> dict[str, Any]:
        """Per route and per model summaries, and the saving against the priciest model."""
        baseline = most_expensive(configured_models)
        with self._lock:
            routes: dict[str, Any] = {}
            total_cost = total_baseline = 0.0
            for name in sorted(set(self._routes) | set(self._decisions) | set(self._quality)):
                tally = self._routes.get(name, _Tally())
                entry = {"decisions": self._decisions.get(name, 0), **tally.summary()}
                entry.update(self._quality.get(name, _Quality()).summary())
                base = (
                    token_cost(baseline, tally.prompt_tokens, tally.completion_tokens)
                    if baseline
                    else None
                )
                entry["baseline_cost_usd"] = round(base, 8) if base is not None else None
                entry["saving_usd"] = round(base - tally.cost_usd, 8) if base is not None else None
                total_cost += tally.cost_usd
                total_baseline += base or 0.0
                routes[name] = entry
            models = {name: t.summary() for name, t in sorted(self._models.items())}
            requests = sum(t.requests for t in self._routes.values())
            successes = sum(t.successes for t in self._routes.values())
        saving = total_baseline - total_cost if baseline else None
        return {
            "requests": requests,
            "success_rate": round(successes / requests, 6) if requests else None,
            "cost_usd": round(total_cost, 8),
            "baseline_model": baseline,
            "baseline_cost_usd": round(total_baseline, 8) if baseline else None,
            "saving_usd": round(saving, 8) if saving is not None else None,
            "saving_ratio": round(saving / total_baseline, 6)
            if saving is not None and total_baseline > 0
            else None,
            "routes": routes,
            "models": models,
        }
