"""POST /complete: a routed answer, and the record of how it was obtained."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.api.engine import Engine, current_engine
from service.api.errors import error_response
from service.api.routing_api import CLIENT_ERRORS
from service.api.schemas import AttemptInfo, CompleteRequest, CompleteResponse, ErrorResponse
from service.completion.chain import CompletionJob, content_of, model_chain
from service.ops.monitoring import Monitor, current_monitor

router = APIRouter()
DEADLINE_SLACK_S = 0.25
"""Past the policy's deadline, the time the fallback chain gets to report its own attempts."""


@router.post(
    "/complete",
    response_model=CompleteResponse,
    responses={**CLIENT_ERRORS, 502: {"model": ErrorResponse}, 504: {"model": ErrorResponse}},
)
async def complete(
    body: CompleteRequest,
    engine: Annotated[Engine, Depends(current_engine)],
    monitor: Annotated[Monitor, Depends(current_monitor)],
) -> CompleteResponse | JSONResponse:
    """Route the request, then answer it with the chosen model, falling back on failure."""
    started = time.perf_counter()
    policy = engine.route_set.config.completion
    try:  # the tie-breaker's time counts against the overall deadline too
        decision = await asyncio.wait_for(engine.router.decide(body), policy.deadline_s)
    except TimeoutError:
        return chain_failure(True, [], policy.deadline_s)
    monitor.decided(decision, body, "complete")
    route = engine.route_set.get(decision.route)
    job = CompletionJob(
        messages=body.chat_messages(),
        models=model_chain(decision.model, decision.fallbacks, policy.escalation_model),
        params=body.generation_params(),
        reviewer=route.reviewer if route else None,
    )
    remaining = policy.deadline_s - (time.perf_counter() - started)
    try:
        result = await asyncio.wait_for(
            engine.completer.run(job), max(remaining, 0.0) + DEADLINE_SLACK_S
        )
    except TimeoutError:
        return chain_failure(True, [], policy.deadline_s)
    monitor.completed(decision, result, time.perf_counter() - started)
    attempts = [AttemptInfo(**vars(a)) for a in result.attempts]
    for attempt in attempts:  # observed latencies steer requests that set max_latency_ms
        if attempt.outcome == "ok" and attempt.role != "review":
            engine.router.latency.observe(attempt.model, attempt.latency_ms)
    if not result.ok:
        return chain_failure(result.deadline_exceeded, attempts, policy.deadline_s)
    answer, finish_reason, _ = content_of(result.response)
    costs = [a.cost_usd for a in attempts if a.cost_usd is not None]
    return CompleteResponse(
        answer=answer,
        model=result.model or decision.model,
        finish_reason=finish_reason,
        attempts=attempts,
        decision=decision,
        usage=total_usage(attempts),
        cost_usd=round(sum(costs), 8) if costs else None,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        reviewed=result.reviewed,
        review_note=result.review_note,
    )


def total_usage(attempts: list[AttemptInfo]) -> dict[str, int] | None:
    """Tokens summed over every attempt that reported usage (failed ones cost tokens too)."""
    reported = [a.usage for a in attempts if a.usage]
    if not reported:
        return None
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {key: sum(usage.get(key, 0) for usage in reported) for key in keys}


def chain_failure(
    deadline_exceeded: bool, attempts: list[AttemptInfo], deadline_s: float
) -> JSONResponse:
    """502 when every model failed, 504 when the deadline ran out; the attempts say why."""
    listing = [a.model_dump() for a in attempts]
    if deadline_exceeded:
        return error_response(
            504,
            "deadline_exceeded",
            f"no model answered within the {deadline_s:g}s deadline",
            attempts=listing,
        )
    if attempts and all(a.error_type == "missing_api_key" for a in attempts):
        needed = "; ".join(a.message or a.model for a in attempts)
        return error_response(502, "missing_api_key", needed, attempts=listing)
    tried = ", ".join(f"{a.model} ({a.error_type or a.outcome})" for a in attempts)
    return error_response(
        502, "all_models_failed", f"every model failed: {tried}", attempts=listing
    )
