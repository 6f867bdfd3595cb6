"""FastAPI app factory: validates routes and index eagerly, loads the encoder at start-up.

Routes and index are checked inside ``create_app`` so a broken set-up fails before the
server binds its port, with a message that names the fix; the encoder (seconds to load) is
loaded in the lifespan, and ``/readyz`` says when it is warm.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from service import __version__
from service.api import (
    completion_api,
    console_api,
    contract,
    encoders,
    limits,
    monitoring_api,
    openai_api,
    reload,
    routing_api,
)
from service.api.auth import AuthMiddleware
from service.api.console import mount_console
from service.api.engine import Engine, NotReadyError, StartupError, build_engine, load_state
from service.api.errors import BodyLimitMiddleware, error_response, install_error_handlers
from service.api.schemas import ErrorResponse
from service.completion.chain import Call
from service.config.routes import RouteSet
from service.config.settings import Settings
from service.index.store import LoadedIndex
from service.ops.monitoring import Monitor, batching_counts, tiebreaker_outcomes
from service.routing.router import Router
from service.routing.semantic import Embedder
from service.routing.types import RouteRequest
from service.state.factory import open_state

__all__ = ["StartupError", "create_app", "create_app_from_env", "load_state"]


def create_app(
    settings: Settings | None = None,
    encoder: Embedder | None = None,
    llm_call: Call | None = None,
    wide_encoder: Embedder | None = None,
    loaded: tuple[RouteSet, LoadedIndex] | None = None,
) -> FastAPI:
    """Build the service.

    ``encoder`` (and ``wide_encoder``) share loaded models between test apps; ``llm_call`` replaces
    ``litellm.acompletion`` (tests pass it with litellm's ``mock_response``); ``loaded`` is the
    result of ``load_state(settings)`` when the caller has already checked the set-up.
    """
    settings = settings or Settings()
    route_set, index = loaded if loaded is not None else load_state(settings)
    # The app's, not an engine's: a reload hands it to the new engine.
    state = open_state(settings, route_set.config.conversation_cache_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = encoder
        if model is None:
            model = await asyncio.to_thread(encoders.load_primary, settings)
        wide = wide_encoder
        if wide is None and settings.wide_model is not None:
            wide = await asyncio.to_thread(encoders.load_wide, settings)
        app.state.wide_encoder = wide  # a reload builds its engine with the same one
        engine = build_engine(settings, route_set, index, model, state, llm_call, wide)
        await engine.router.decide(RouteRequest(prompt="warm up the encoder", tiebreak=False))
        app.state.engine = engine
        freeze_startup_objects()
        try:
            async with reload.hot_reload(app):
                yield
        finally:
            app.state.engine.close()
            await state.close()

    app = FastAPI(
        title="semroute",
        version=__version__,
        summary="Semantic LLM routing: picks the model that fits each prompt.",
        lifespan=lifespan,
        # Every path may answer 401 once SEMROUTE_API_KEYS is set (auth.py).
        responses={401: {"model": ErrorResponse}},
        dependencies=[Depends(limits.message_limit)],
    )
    app.state.engine = None
    app.state.settings = settings

    def serving_router() -> Router | None:
        engine: Engine | None = app.state.engine
        return engine.router if engine is not None else None

    app.state.monitor = Monitor(
        settings, state, tiebreaker_outcomes(serving_router), batching_counts(serving_router)
    )
    app.state.llm_call = llm_call  # a reload builds its engine with the same call
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        limits.CompletionLimitMiddleware, max_inflight=settings.max_inflight_completions
    )
    app.add_middleware(reload.EngineLeaseMiddleware)
    # Added last, so outermost: an unauthenticated request is refused before anything else.
    app.add_middleware(
        AuthMiddleware,
        api_keys=settings.api_key_list(),
        admin_key=settings.admin_key.get_secret_value() if settings.admin_key else None,
    )
    app.add_exception_handler(limits.TooManyMessagesError, limits.too_many_messages)

    @app.exception_handler(NotReadyError)
    async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
        return error_response(503, "not_ready", "the router is still loading; retry shortly")

    app.include_router(routing_api.router)
    app.include_router(completion_api.router)
    app.include_router(openai_api.router)
    app.include_router(monitoring_api.router)
    app.include_router(reload.router)
    app.include_router(console_api.router)
    mount_console(app)
    contract.install_openapi(
        app,
        lambda: (app.state.engine.route_set if app.state.engine else route_set).names,
        api_keys=bool(settings.api_key_list()),
    )
    return app


def freeze_startup_objects() -> None:
    """Keep the objects made at start-up out of every later garbage collection.

    Imports (litellm above all) leave about 400,000 objects; a full collection walks them all
    and paused the event loop for about 215 ms, which was the whole p99 of /route under load.
    They live as long as the process, so ``gc.freeze`` moves them to a generation the
    collector never visits. Objects of a reload's new engine are not frozen.
    """
    gc.collect()
    gc.freeze()


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: every worker process builds its own app."""
    return create_app(Settings())
