"""FastAPI app factory: validates routes and index eagerly, loads the encoder at start-up.

Routes and index are checked inside ``create_app`` so a broken set-up fails before the
server binds its port, with a message that names the fix; the encoder (seconds to load) is
loaded in the lifespan, and ``/readyz`` says when it is warm.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service import __version__, completion_api, routing_api
from service.completion import Call
from service.encoder import Encoder
from service.engine import NotReadyError, StartupError, build_engine, load_state
from service.errors import BodyLimitMiddleware, error_response, install_error_handlers
from service.router import Embedder
from service.schemas import RouteRequest
from service.settings import Settings

__all__ = ["StartupError", "create_app", "create_app_from_env", "load_state"]


def create_app(
    settings: Settings | None = None,
    encoder: Embedder | None = None,
    llm_call: Call | None = None,
) -> FastAPI:
    """Build the service.

    ``encoder`` shares one loaded model between test apps; ``llm_call`` replaces
    ``litellm.acompletion`` (tests pass it with litellm's ``mock_response``).
    """
    settings = settings or Settings()
    route_set, index = load_state(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = encoder
        if model is None:
            model = await asyncio.to_thread(
                Encoder,
                settings.embedding_model,
                settings.embedding_device,
                settings.encode_cache_size,
            )
        engine = build_engine(settings, route_set, index, model, llm_call)
        await engine.router.decide(RouteRequest(prompt="warm up the encoder", tiebreak=False))
        app.state.engine = engine
        try:
            yield
        finally:
            app.state.engine.close()

    app = FastAPI(
        title="semroute",
        version=__version__,
        summary="Semantic LLM routing: picks the model that fits each prompt.",
        lifespan=lifespan,
    )
    app.state.engine = None
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)

    @app.exception_handler(NotReadyError)
    async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
        return error_response(503, "not_ready", "the router is still loading; retry shortly")

    app.include_router(routing_api.router)
    app.include_router(completion_api.router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: every worker process builds its own app."""
    return create_app(Settings())
