"""The one completion path behind ``POST /complete`` and ``POST /v1/chat/completions``.

Route the request, run the fallback chain, tell the monitor and feed the observed latencies
back to the router, all inside one deadline: the policy's ``deadline_s`` counts from the
request's arrival, so the time the decision took (a slow tie-breaker above all) is taken
from the chain's budget. The chain enforces its own deadline and always returns the record
of its attempts; nothing waits on it from outside. The endpoints only translate their
request shape into ``answer``'s arguments and its outcome into their response shape.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from service.api.engine import Engine
from service.api.errors import error_response
from service.api.schemas import AttemptInfo
from service.completion.chain import ChainResult, CompletionJob, StreamedAnswer, model_chain
from service.config.routes import CompletionPolicy
from service.ops.monitoring import Monitor
from service.routing.types import Decision, RouteRequest


@dataclass(frozen=True)
class Answered:
    """A routed request that a model answered (or, for a stream, started answering)."""

    decision: Decision
    result: ChainResult
    started: float
    stream: StreamedAnswer | None = None

    def attempts(self) -> list[AttemptInfo]:
        return [AttemptInfo(**vars(a)) for a in self.result.attempts]


async def answer(
    engine: Engine,
    monitor: Monitor,
    request: RouteRequest,
    endpoint: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    stream: bool = False,
) -> Answered | JSONResponse:
    """Decide, then answer with the decision's models; a JSONResponse is the failure to send.

    A streamed answer is complete only once its chunks are consumed: the caller then calls
    ``finished`` (the chain's record is final only at that point).
    """
    started = time.perf_counter()
    policy = engine.route_set.config.completion
    try:
        decision = await asyncio.wait_for(engine.router.decide(request), policy.deadline_s)
    except TimeoutError:
        return chain_failure(True, [], policy)
    monitor.decided(decision, request, endpoint)
    route = engine.route_set.get(decision.route)
    job = CompletionJob(
        messages=messages,
        models=model_chain(decision.model, decision.fallbacks, policy.escalation_model),
        params=params,
        reviewer=None if stream or route is None else route.reviewer,
        budget_s=policy.deadline_s - (time.perf_counter() - started),
    )
    if stream:
        streamed = await engine.completer.stream(job)
        if streamed.ok:
            return Answered(decision, streamed.result, started, streamed)
        result = streamed.result
    else:
        result = await engine.completer.run(job)
    await finished(engine, monitor, decision, result, started)
    if not result.ok:
        attempts = [AttemptInfo(**vars(a)) for a in result.attempts]
        return chain_failure(result.deadline_exceeded, attempts, policy)
    return Answered(decision, result, started)


async def finished(
    engine: Engine, monitor: Monitor, decision: Decision, result: ChainResult, started: float
) -> None:
    """The request is over: record it, and let its observed latencies steer later requests
    that set ``max_latency_ms`` (a review's time is not the answering model's)."""
    monitor.completed(decision, result, time.perf_counter() - started)
    for attempt in result.attempts:
        if attempt.outcome == "ok" and attempt.role != "review":
            await engine.state.observe_latency(attempt.model, attempt.latency_ms)


def chain_failure(
    deadline_exceeded: bool, attempts: list[AttemptInfo], policy: CompletionPolicy
) -> JSONResponse:
    """502 when every model failed, 504 when the deadline ran out, 503 when every model is
    cooling down after repeated failures; the attempts say why."""
    listing = [a.model_dump() for a in attempts]
    if deadline_exceeded:
        return error_response(
            504,
            "deadline_exceeded",
            f"no model answered within the {policy.deadline_s:g}s deadline",
            attempts=listing,
        )
    if attempts and all(a.error_type == "cooldown" for a in attempts):
        response = error_response(
            503,
            "models_cooling_down",
            "every model of the route failed repeatedly of late and is cooling down; retry later",
            attempts=listing,
        )
        response.headers["retry-after"] = str(math.ceil(policy.cooldown.cooldown_s))
        return response
    if attempts and all(a.error_type == "missing_api_key" for a in attempts):
        needed = "; ".join(a.message or a.model for a in attempts)
        return error_response(502, "missing_api_key", needed, attempts=listing)
    tried = ", ".join(f"{a.model} ({a.error_type or a.outcome})" for a in attempts)
    return error_response(
        502, "all_models_failed", f"every model failed: {tried}", attempts=listing
    )
