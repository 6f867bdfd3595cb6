"""GET /metrics, GET /stats and POST /feedback: what the service did, and how well."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from service.api.engine import Engine, current_engine
from service.api.errors import error_response
from service.api.routing_api import CLIENT_ERRORS
from service.api.schemas import ErrorResponse, FeedbackRequest, FeedbackResponse
from service.ops.metrics import CONTENT_TYPE
from service.ops.monitoring import Monitor, UnknownDecisionError, current_monitor

router = APIRouter()
CurrentMonitor = Annotated[Monitor, Depends(current_monitor)]


def configured_models(engine: Engine) -> list[str]:
    """Every model a completion may call: route models, tiers, fallbacks, escalation."""
    route_set = engine.route_set
    models = [
        m
        for r in route_set.routes
        for m in (r.model, *(entry.model for entry in r.models), *r.fallbacks)
    ]
    escalation = route_set.config.completion.escalation_model
    return list(dict.fromkeys([*models, *([escalation] if escalation else [])]))


@router.get("/metrics", response_class=Response)
async def metrics(monitor: CurrentMonitor, request: Request) -> Response:
    """Prometheus text format (this replica's counters; cooldowns as the state store sees them)."""
    engine: Engine | None = request.app.state.engine
    cooling: dict[str, float] = {}
    if engine is not None:
        models = configured_models(engine)
        left = await monitor.state.cooldowns(models)
        cooling = {m: left.get(m, 0.0) for m in models}
    return Response(monitor.metrics.exposition(cooling), media_type=CONTENT_TYPE)


@router.get("/stats")
async def stats(
    monitor: CurrentMonitor, engine: Annotated[Engine, Depends(current_engine)]
) -> dict[str, Any]:
    """Per route and per model since this replica started: volume, success, latency, cost,
    saving, quality; and the models in cooldown now (shared by replicas with Redis)."""
    models = configured_models(engine)
    report = monitor.report(models)
    left = await monitor.state.cooldowns(models)
    report["cooldowns"] = {m: {"seconds_left": round(s, 3)} for m, s in sorted(left.items())}
    report["scope"] = {
        "counters": "this replica since it started; other replicas keep their own",
        "cooldowns": "shared by every replica" if monitor.state.shared else "this replica",
    }
    return report


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses={**CLIENT_ERRORS, 404: {"model": ErrorResponse}},
)
async def feedback(
    body: FeedbackRequest,
    monitor: CurrentMonitor,
    engine: Annotated[Engine, Depends(current_engine)],
) -> FeedbackResponse | JSONResponse:
    """Rate a recent decision's answer, optionally naming the route it should have taken."""
    if body.correct_route is not None and engine.route_set.get(body.correct_route) is None:
        return error_response(
            400,
            "unknown_route",
            f"unknown route '{body.correct_route}'; known routes: "
            f"{', '.join(engine.route_set.names)}",
        )
    try:
        route = await monitor.feedback(body.decision_id, body.rating, body.correct_route)
    except UnknownDecisionError as error:
        return error_response(404, "unknown_decision", str(error))
    return FeedbackResponse(decision_id=body.decision_id, route=route)
