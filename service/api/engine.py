"""The serving engine: one route set, its index, and the router and completer built on them.

An ``Engine`` is immutable once built; replacing the whole object is how a reload swaps
routes and index without disturbing requests that still hold the old one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import Request

from service.completion.chain import Call, Completer
from service.completion.providers import Endpoints
from service.config.routes import RouteSet, RouteSetError, load_route_set
from service.config.settings import Settings
from service.encoding.batching import BatchLimits
from service.index.store import (
    IndexProblem,
    LoadedIndex,
    check_index,
    load_index,
    read_manifest,
    staleness,
)
from service.routing.router import Router
from service.routing.semantic import Embedder
from service.routing.tiebreak import LLMTiebreaker
from service.state.store import StateStore

log = logging.getLogger("semroute")


class StartupError(RuntimeError):
    """The service cannot start; the message is meant for the operator's terminal."""


class NotReadyError(RuntimeError):
    """A request arrived before the engine finished loading."""


def load_state(settings: Settings) -> tuple[RouteSet, LoadedIndex]:
    """Validate the route folder and the index built from it, or raise StartupError."""
    try:
        route_set = load_route_set(settings.routes_dir)
    except RouteSetError as error:
        raise StartupError(str(error)) from error
    try:
        if settings.stale_index == "refuse":
            manifest = check_index(
                settings.index_dir, route_set, settings.embedding_model, settings.wide_model
            )
        else:
            manifest = read_manifest(settings.index_dir)
            reason = staleness(manifest, route_set, settings.embedding_model, settings.wide_model)
            if reason:
                log.warning("serving a stale index: %s", reason)
        index = load_index(settings.index_dir, manifest)
    except IndexProblem as error:
        raise StartupError(str(error)) from error
    unknown = set(index.route_names) - set(route_set.names)
    if unknown:
        raise StartupError(
            f"the index holds routes that no longer exist ({', '.join(sorted(unknown))}); "
            "rebuild it with: python scripts/build_index.py"
        )
    return route_set, index


@dataclass(frozen=True)
class Engine:
    """One route set and what serves it; ``state`` is the app's, shared by every engine."""

    route_set: RouteSet
    index: LoadedIndex
    router: Router
    completer: Completer
    state: StateStore

    def close(self) -> None:
        self.router.close()


def build_engine(
    settings: Settings,
    route_set: RouteSet,
    index: LoadedIndex,
    encoder: Embedder,
    state: StateStore,
    llm_call: Call | None = None,
    wide_encoder: Embedder | None = None,
) -> Engine:
    """Wire the router (with its tie-breaker) and the completer for one route set.

    ``state`` is the app's store: conversations, latencies and cooldowns survive a reload.
    """
    if encoder.dimension != index.dimension:
        raise StartupError(
            f"the encoder gives {encoder.dimension}-d vectors, the index holds {index.dimension}-d "
            "ones; rebuild it with: python scripts/build_index.py"
        )
    endpoints = Endpoints(
        models=route_set.config.models,
        override_model=settings.model_override,
        override_api_base=settings.llm_api_base,
        override_api_key=settings.llm_api_key,
    )
    tiebreaker = (
        LLMTiebreaker(route_set.config.tiebreaker, endpoints, call=llm_call)
        if route_set.config.tiebreaker
        else None
    )
    router = Router(
        route_set,
        index,
        encoder,
        top_k=settings.top_k,
        max_prompt_chars=settings.max_prompt_chars,
        tiebreaker=tiebreaker,
        state=state,
        batching=BatchLimits(settings.batch_max, settings.batch_wait_ms),
        wide_encoder=wide_encoder,
    )
    completer = Completer(endpoints, route_set.config.completion, call=llm_call, state=state)
    return Engine(route_set=route_set, index=index, router=router, completer=completer, state=state)


async def current_engine(request: Request) -> Engine:
    """FastAPI dependency: the engine serving now (503 until start-up has finished).

    The one pinned when the request arrived (``reload.EngineLeaseMiddleware``), so a reload
    during the request does not switch engines halfway through it. ``async`` although it
    never awaits: FastAPI runs a plain ``def`` dependency on a worker thread, a hop per request.
    """
    engine: Engine | None = getattr(request.state, "engine", None) or request.app.state.engine
    if engine is None:
        raise NotReadyError
    return engine
