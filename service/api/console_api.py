"""The route explorer's data: GET /console/routes, GET /console/map, POST /console/locate.

Keyed like every other endpoint. The map and the confusable pairs were computed at index
build (``service/index/route_map.py``); these endpoints only shape them, and place a typed
prompt on the map with the encoder that routes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from service.api.engine import Engine, current_engine
from service.api.errors import error_response
from service.api.routing_api import CLIENT_ERRORS, route_info
from service.api.schemas import ErrorResponse, RouteInfo
from service.config.routes import Route
from service.index import route_map
from service.index.store import BUILD_COMMAND
from service.routing.router import PromptTooLargeError
from service.routing.tier_choice import litellm_cost_per_1k

router = APIRouter(prefix="/console", tags=["console"])
CurrentEngine = Annotated[Engine, Depends(current_engine)]
NO_MAP: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}
DEFAULT_POINTS = 3000
CONFUSABLE_SHOWN = 10


class TierInfo(BaseModel):
    model: str
    tier: str


class ConsoleRoute(RouteInfo):
    models: list[TierInfo] = Field(description="Tiered models, if the route has any.")
    accept_threshold: float | None = Field(
        description="Classifier scoring: the in-scope score this route's top match must reach "
        "(calibrated at index build); null with knn scoring, where 'threshold' applies."
    )


class ConsoleRoutes(BaseModel):
    scoring: Literal["classifier", "knn"]
    default_route: str
    routes: list[ConsoleRoute]
    prices: dict[str, float | None] = Field(
        description="Blended USD per 1k tokens of every configured model; null if unpriced."
    )


class RoutePair(BaseModel):
    routes: tuple[str, str]
    overlap: float = Field(
        description="Share of the pair's sampled utterances whose nearest other utterance "
        "belongs to the other route."
    )
    centroid_similarity: float = Field(description="Cosine of the routes' mean vectors.")


class RouteMapResponse(BaseModel):
    method: Literal["discriminant", "principal"]
    routes: list[str]
    explained_variance: list[float] = Field(
        description="Each axis's share of the routes' separation (discriminant) or of the "
        "utterances' variance (principal)."
    )
    total: int = Field(description="Utterances in the index; 'points' may show a sample.")
    points: list[tuple[float, float, int, str]] = Field(
        description="[x, y, position in 'routes', utterance] per shown utterance."
    )
    confusable: list[RoutePair]


class LocateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="Placed on the map as the router embeds it.")


class MapPosition(BaseModel):
    x: float
    y: float


def model_prices(routes: Iterable[Route], escalation: str | None) -> dict[str, float | None]:
    """Blended price per 1k tokens of every model the routes can call."""
    declared = {e.model: e.cost_per_1k_tokens for r in routes for e in r.models}
    models = {m for r in routes for m in (r.model, *r.fallbacks, *declared)}
    models |= {escalation} if escalation else set()
    return {
        model: declared[model] if declared.get(model) is not None else litellm_cost_per_1k(model)
        for model in sorted(models)
    }


def no_route_map() -> JSONResponse:
    return error_response(
        404, "no_route_map", f"this index has no route map; rebuild it with: {BUILD_COMMAND}"
    )


@router.get("/routes", response_model=ConsoleRoutes)
async def console_routes(engine: CurrentEngine) -> ConsoleRoutes:
    """Every route with its description, models, thresholds and utterance count, and prices."""
    route_set, index = engine.route_set, engine.index
    calibrated = route_set.config.scoring == "classifier" and index.calibration is not None
    position = {name: i for i, name in enumerate(index.route_names)}
    routes = []
    for route in route_set.routes:
        accept = None
        if calibrated and route.name in position:
            accept = index.calibration.route_thresholds[position[route.name]]  # type: ignore[union-attr]
        routes.append(
            ConsoleRoute(
                **route_info(route_set, route).model_dump(),
                models=[TierInfo(model=e.model, tier=e.tier) for e in route.models],
                accept_threshold=accept,
            )
        )
    return ConsoleRoutes(
        scoring=route_set.config.scoring,
        default_route=route_set.config.default_route,
        routes=routes,
        prices=model_prices(route_set.routes, route_set.config.completion.escalation_model),
    )


@router.get("/map", response_model=RouteMapResponse, responses=NO_MAP)
async def console_map(
    engine: CurrentEngine,
    points: Annotated[int, Query(ge=1, le=100_000, description="Most utterances shown.")] = (
        DEFAULT_POINTS
    ),
) -> RouteMapResponse | JSONResponse:
    """Every utterance in 2-D (a per-route sample above ``points``), and confusable pairs."""
    index = engine.index
    projection = index.route_map
    if projection is None:
        return no_route_map()
    names = list(index.route_names)
    shown = route_map.shown_points(index.labels, len(names), points)
    coords = projection.coords[shown].astype(np.float64).round(5).tolist()
    return RouteMapResponse(
        method=projection.method,  # type: ignore[arg-type]
        routes=names,
        explained_variance=[round(float(v), 6) for v in projection.explained_variance],
        total=len(index.labels),
        points=[
            (x, y, int(index.labels[i]), index.utterances[i])
            for (x, y), i in zip(coords, shown.tolist(), strict=True)
        ],
        confusable=[
            RoutePair(
                routes=(names[int(a)], names[int(b)]),
                overlap=round(float(overlap), 6),
                centroid_similarity=round(float(similarity), 6),
            )
            for (a, b), overlap, similarity in zip(
                projection.pairs[:CONFUSABLE_SHOWN],
                projection.overlap,
                projection.centroid_similarity,
                strict=False,
            )
        ],
    )


@router.post("/locate", response_model=MapPosition, responses={**CLIENT_ERRORS, **NO_MAP})
async def console_locate(body: LocateRequest, engine: CurrentEngine) -> MapPosition | JSONResponse:
    """Where a prompt lands on the route map, embedded exactly as ``/route`` embeds it."""
    projection = engine.index.route_map
    if projection is None:
        return no_route_map()
    limit = engine.router.max_prompt_chars
    if len(body.prompt) > limit:
        raise PromptTooLargeError(
            f"the prompt has {len(body.prompt)} characters; the limit is {limit}"
        )
    vector = await engine.router.semantic.embed(body.prompt)
    x, y = projection.project(vector[None, :])[0]
    return MapPosition(x=round(float(x), 5), y=round(float(y), 5))
