"""FastAPI app factory: validates routes and index eagerly, loads the encoder at start-up.

Routes and index are checked inside ``create_app`` so a broken set-up fails before the
server binds its port, with a message that names the fix; the encoder (seconds to load) is
loaded in the lifespan, and ``/readyz`` says when it is warm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service import __version__
from service.completion import Call, Completer, CompletionJob, content_of, model_chain
from service.encoder import Encoder
from service.errors import BodyLimitMiddleware, error_response, install_error_handlers
from service.index import (
    IndexProblem,
    LoadedIndex,
    check_index,
    load_index,
    read_manifest,
    staleness,
)
from service.providers import Endpoints
from service.router import Embedder, Router
from service.routes import RouteSet, RouteSetError, load_route_set
from service.schemas import (
    AttemptInfo,
    CompleteRequest,
    CompleteResponse,
    Decision,
    ErrorResponse,
    RouteInfo,
    RouteRequest,
)
from service.settings import Settings
from service.tiebreak import LLMTiebreaker

log = logging.getLogger("semroute")

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 413, 422, 503)
}


class StartupError(RuntimeError):
    """The service cannot start; the message is meant for the operator's terminal."""


def load_state(settings: Settings) -> tuple[RouteSet, LoadedIndex]:
    """Validate the route folder and the index built from it, or raise StartupError."""
    try:
        route_set = load_route_set(settings.routes_dir)
    except RouteSetError as error:
        raise StartupError(str(error)) from error
    try:
        if settings.stale_index == "refuse":
            manifest = check_index(settings.index_dir, route_set, settings.embedding_model)
        else:
            manifest = read_manifest(settings.index_dir)
            reason = staleness(manifest, route_set, settings.embedding_model)
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
    endpoints = Endpoints(
        models=route_set.config.models,
        override_model=settings.model_override,
        override_api_base=settings.llm_api_base,
        override_api_key=settings.llm_api_key,
    )
    policy = route_set.config.completion
    completer = Completer(endpoints, policy, call=llm_call)
    tiebreaker = (
        LLMTiebreaker(route_set.config.tiebreaker, endpoints, call=llm_call)
        if route_set.config.tiebreaker
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = encoder
        if model is None:
            loaded = await asyncio.to_thread(
                Encoder,
                settings.embedding_model,
                settings.embedding_device,
                settings.encode_cache_size,
            )
            if loaded.dimension != index.dimension:
                raise StartupError(
                    f"the encoder gives {loaded.dimension}-d vectors, the index holds "
                    f"{index.dimension}-d ones; rebuild it with: python scripts/build_index.py"
                )
            model = loaded
        router = Router(
            route_set,
            index,
            model,
            top_k=settings.top_k,
            max_prompt_chars=settings.max_prompt_chars,
            tiebreaker=tiebreaker,
        )
        await router.decide(RouteRequest(prompt="warm up the encoder", tiebreak=False))
        app.state.router = router
        try:
            yield
        finally:
            router.close()

    app = FastAPI(
        title="semroute",
        version=__version__,
        summary="Semantic LLM routing: picks the model that fits each prompt.",
        lifespan=lifespan,
    )
    app.state.router = None
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)

    def current_router(request: Request) -> Router:
        router: Router | None = request.app.state.router
        if router is None:
            raise _NotReady
        return router

    @app.exception_handler(_NotReady)
    async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
        return error_response(503, "not_ready", "the router is still loading; retry shortly")

    @app.post("/route", response_model=Decision, responses=ERRORS)
    async def route(body: RouteRequest, request: Request) -> Decision:
        """Decide which route and model fit the prompt, without calling any model."""
        return await current_router(request).decide(body)

    @app.post(
        "/complete",
        response_model=CompleteResponse,
        responses={**ERRORS, 502: {"model": ErrorResponse}, 504: {"model": ErrorResponse}},
    )
    async def complete(body: CompleteRequest, request: Request) -> CompleteResponse | JSONResponse:
        """Route the request, then answer it with the chosen model, falling back on failure."""
        started = time.perf_counter()
        router = current_router(request)
        decision = await router.decide(body)
        route = router.route_set.get(decision.route)
        job = CompletionJob(
            messages=body.chat_messages(),
            models=model_chain(decision.model, decision.fallbacks, policy.escalation_model),
            params=body.generation_params(),
            reviewer=route.reviewer if route else None,
        )
        result = await completer.run(job)
        attempts = [AttemptInfo(**vars(a)) for a in result.attempts]
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

    @app.get("/routes", response_model=list[RouteInfo])
    async def routes(request: Request) -> list[RouteInfo]:
        """The configured routes, with their models and thresholds."""
        router = current_router(request)
        return [
            RouteInfo(
                name=r.name,
                description=r.description,
                model=r.model,
                fallbacks=list(r.fallbacks),
                threshold=router.route_set.threshold(r.name),
                utterances=len(r.utterances),
            )
            for r in router.route_set.routes
        ]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorResponse}})
    async def readyz(request: Request) -> dict[str, object]:
        """Readiness: the index is loaded and the encoder is warm."""
        router = current_router(request)
        return {
            "status": "ready",
            "routes": len(router.route_set.routes),
            "vectors": len(router.index.utterances),
            "index_fingerprint": router.index.fingerprint,
        }

    return app


class _NotReady(Exception):
    pass


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


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: every worker process builds its own app."""
    return create_app(Settings())
