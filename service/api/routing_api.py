"""Endpoints that decide without calling a model: /route, /routes and the probes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from service.api.engine import Engine, current_engine
from service.api.schemas import ErrorResponse, RouteInfo
from service.config.routes import Route, RouteSet
from service.ops.monitoring import Monitor, current_monitor
from service.routing.types import Decision, RouteRequest

router = APIRouter()
CurrentEngine = Annotated[Engine, Depends(current_engine)]
CLIENT_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 413, 415, 422, 503)
}


@router.post("/route", response_model=Decision, responses=CLIENT_ERRORS)
async def route(
    body: RouteRequest,
    engine: CurrentEngine,
    monitor: Annotated[Monitor, Depends(current_monitor)],
) -> Decision:
    """Decide which route and model fit the prompt, without calling any model."""
    decision = await engine.router.decide(body)
    monitor.decided(decision, body, "route")
    return decision


def route_info(route_set: RouteSet, route: Route) -> RouteInfo:
    return RouteInfo(
        name=route.name,
        description=route.description,
        model=route.model,
        fallbacks=list(route.fallbacks),
        threshold=route_set.threshold(route.name),
        utterances=len(route.utterances),
        wide_utterances=len(route.wide_utterances),
    )


@router.get("/routes", response_model=list[RouteInfo])
async def routes(engine: CurrentEngine) -> list[RouteInfo]:
    """The configured routes, with their models and thresholds."""
    return [route_info(engine.route_set, route) for route in engine.route_set.routes]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorResponse}})
async def readyz(engine: CurrentEngine) -> dict[str, object]:
    """Readiness: the index is loaded and the encoder is warm."""
    return {
        "status": "ready",
        "routes": len(engine.route_set.routes),
        "vectors": len(engine.index.utterances),
        "index_fingerprint": engine.index.fingerprint,
    }
