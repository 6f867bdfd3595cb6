"""Hot reload: load routes + index into a new Engine and swap it in without downtime.

``POST /admin/reload`` and SIGHUP (in the server process) do the same thing:

1. load and validate ``routes/`` and ``index/`` (``engine.load_state``) off the event loop;
2. build a new Engine on the encoder already loaded (no model reload, no second copy);
3. answer one routing request with it, then replace ``app.state.engine`` in one assignment.

Any failure before step 3 leaves the old engine serving and is reported as 409
``reload_failed`` with the message that names the fix. Requests hold the engine they started
with (``EngineLeaseMiddleware`` pins it in the request scope and counts it), so in-flight
requests finish on the old engine, which is closed once its last request is done, or after
``reload_grace_s`` at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.engine import Engine, StartupError, build_engine, current_engine, load_state
from service.api.errors import error_response
from service.api.schemas import ErrorResponse
from service.routing.types import RouteRequest

log = logging.getLogger("semroute")


class ReloadError(RuntimeError):
    """The new routes or index cannot serve; the old engine goes on serving."""


class ReloadResult(BaseModel):
    status: str
    routes: int
    vectors: int
    index_fingerprint: str
    previous_fingerprint: str


class AdminStatus(BaseModel):
    """What a reload would replace; also how a client checks that its admin key works."""

    routes: int
    vectors: int
    index_fingerprint: str
    index_built_at: str | None


class EngineLeases:
    """How many requests are in flight on each engine, so a replaced one is closed when idle."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._idle: dict[int, asyncio.Event] = {}

    def acquire(self, engine: Engine) -> None:
        self._counts[id(engine)] = self._counts.get(id(engine), 0) + 1

    def release(self, engine: Engine) -> None:
        key = id(engine)
        self._counts[key] -= 1
        if self._counts[key] == 0:
            del self._counts[key]
            event = self._idle.pop(key, None)
            if event is not None:
                event.set()

    def in_flight(self, engine: Engine) -> int:
        return self._counts.get(id(engine), 0)

    async def wait_idle(self, engine: Engine, timeout: float) -> bool:
        """True once no request holds ``engine``; False when ``timeout`` ran out first."""
        if self.in_flight(engine) == 0:
            return True
        event = self._idle.setdefault(id(engine), asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True


def leases_of(app: Any) -> EngineLeases:
    leases: EngineLeases | None = getattr(app.state, "engine_leases", None)
    if leases is None:
        leases = app.state.engine_leases = EngineLeases()
    return leases


class EngineLeaseMiddleware:
    """Pins the engine serving now into the request (``request.state.engine``) and counts it.

    Reading and counting happen with no ``await`` in between, so a swap cannot slip between
    them; the count drops when the whole response, streamed bodies included, is sent.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        engine: Engine | None = getattr(scope["app"].state, "engine", None)
        if engine is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["engine"] = engine
        leases = leases_of(scope["app"])
        leases.acquire(engine)
        try:
            await self.app(scope, receive, send)
        finally:
            leases.release(engine)


def _retiring(app: FastAPI) -> set[asyncio.Task[None]]:
    tasks: set[asyncio.Task[None]] | None = getattr(app.state, "retiring_engines", None)
    if tasks is None:
        tasks = app.state.retiring_engines = set()
    return tasks


async def _retire(app: FastAPI, engine: Engine, grace_s: float) -> None:
    """Close a replaced engine once idle, after ``grace_s`` at most, or at shutdown."""
    try:
        if not await leases_of(app).wait_idle(engine, grace_s):
            log.warning(
                "closing the replaced engine with %d requests still in flight after %gs",
                leases_of(app).in_flight(engine),
                grace_s,
            )
    finally:
        engine.close()


async def reload_engine(app: FastAPI) -> tuple[Engine, Engine]:
    """Swap in an engine built from the current routes and index; return (old, new)."""
    lock: asyncio.Lock | None = getattr(app.state, "reload_lock", None)
    if lock is None:
        lock = app.state.reload_lock = asyncio.Lock()
    async with lock:
        current: Engine | None = app.state.engine
        if current is None:
            raise ReloadError("the router is still starting; retry once /readyz answers 200")
        settings = app.state.settings
        try:
            route_set, index = await asyncio.to_thread(load_state, settings)
            engine = build_engine(
                settings,
                route_set,
                index,
                current.router.semantic.encoder,
                current.state,  # conversations, latencies and cooldowns carry over
                getattr(app.state, "llm_call", None),
                getattr(app.state, "wide_encoder", None),
            )
        except StartupError as error:
            raise ReloadError(str(error)) from error
        try:
            await engine.router.decide(RouteRequest(prompt="warm up after reload", tiebreak=False))
        except Exception as error:
            engine.close()
            raise ReloadError(f"the new index cannot route: {error}") from error
        app.state.engine = engine
    task = asyncio.create_task(_retire(app, current, settings.reload_grace_s))
    retiring = _retiring(app)
    retiring.add(task)
    task.add_done_callback(retiring.discard)
    log.info(
        "reloaded %d routes, %d vectors (index %s, was %s)",
        len(engine.route_set.routes),
        len(engine.index.utterances),
        engine.index.fingerprint[:12],
        current.index.fingerprint[:12],
    )
    return current, engine


async def _reload_on_signal(app: FastAPI) -> None:
    try:
        await reload_engine(app)
    except ReloadError as error:
        log.error("reload on SIGHUP failed; the previous routes keep serving: %s", error)


@contextlib.asynccontextmanager
async def hot_reload(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan part: SIGHUP reloads while serving; replaced engines are closed at exit."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        task = loop.create_task(_reload_on_signal(app))
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        installed = True
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):
        installed = False  # not the main thread (test clients) or no SIGHUP on this platform
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGHUP)
        retiring = _retiring(app)
        for task in [*pending, *retiring]:
            task.cancel()
        await asyncio.gather(*pending, *retiring, return_exceptions=True)


router = APIRouter(prefix="/admin", tags=["admin"])


ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403)
}


@router.post(
    "/reload",
    response_model=ReloadResult,
    responses={**ADMIN_ERRORS, 409: {"model": ErrorResponse}},
)
async def reload(request: Request) -> ReloadResult | JSONResponse:
    """Reload routes and index without downtime; on failure the old ones keep serving."""
    try:
        old, new = await reload_engine(request.app)
    except ReloadError as error:
        return error_response(409, "reload_failed", f"{error} (the previous routes keep serving)")
    return ReloadResult(
        status="reloaded",
        routes=len(new.route_set.routes),
        vectors=len(new.index.utterances),
        index_fingerprint=new.index.fingerprint,
        previous_fingerprint=old.index.fingerprint,
    )


@router.get("/status", response_model=AdminStatus, responses=ADMIN_ERRORS)
async def status(engine: Annotated[Engine, Depends(current_engine)]) -> AdminStatus:
    """The routes and index serving now (the console shows reload when this answers)."""
    return AdminStatus(
        routes=len(engine.route_set.routes),
        vectors=len(engine.index.utterances),
        index_fingerprint=engine.index.fingerprint,
        index_built_at=engine.index.manifest.get("built_at"),
    )
