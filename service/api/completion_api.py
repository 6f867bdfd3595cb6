"""POST /complete: a routed answer, and the record of how it was obtained."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.api.answering import answer
from service.api.engine import Engine, current_engine
from service.api.routing_api import CLIENT_ERRORS
from service.api.schemas import AttemptInfo, CompleteRequest, CompleteResponse, ErrorResponse
from service.completion.chain import content_of
from service.ops.monitoring import Monitor, current_monitor

router = APIRouter()


@router.post(
    "/complete",
    response_model=CompleteResponse,
    responses={**CLIENT_ERRORS, **{code: {"model": ErrorResponse} for code in (502, 503, 504)}},
)
async def complete(
    body: CompleteRequest,
    engine: Annotated[Engine, Depends(current_engine)],
    monitor: Annotated[Monitor, Depends(current_monitor)],
) -> CompleteResponse | JSONResponse:
    """Route the request, then answer it with the chosen model, falling back on failure."""
    outcome = await answer(
        engine, monitor, body, "complete", body.chat_messages(), body.generation_params()
    )
    if isinstance(outcome, JSONResponse):
        return outcome
    result, decision = outcome.result, outcome.decision
    attempts = outcome.attempts()
    text, finish_reason, _ = content_of(result.response)
    costs = [a.cost_usd for a in attempts if a.cost_usd is not None]
    return CompleteResponse(
        answer=text,
        model=result.model or decision.model,
        finish_reason=finish_reason,
        attempts=attempts,
        decision=decision,
        usage=total_usage(attempts),
        cost_usd=round(sum(costs), 8) if costs else None,
        latency_ms=round((time.perf_counter() - outcome.started) * 1000, 3),
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
