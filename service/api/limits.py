"""Load limits that keep one greedy client from taking the router down with it.

Two limits live here (body size and prompt size live in ``errors.py`` and the router):

- **messages per request**: an app-wide dependency that rejects a chat longer than
  ``max_messages`` with 413 before its messages are validated one by one;
- **completions in flight**: at most ``max_inflight_completions`` model-calling requests at
  once; one more is refused at once with 503 and ``Retry-After`` instead of queueing without
  bound (a queue would only turn overload into timeouts for everyone).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_response

COMPLETION_PATHS = frozenset({"/complete", "/v1/chat/completions"})
RETRY_AFTER_S = 1


class TooManyMessagesError(ValueError):
    """The request carries more chat messages than the service accepts."""


async def message_limit(request: Request) -> None:
    """App-wide dependency: count ``messages`` of a JSON body (already parsed by FastAPI)."""
    if request.method != "POST" or "json" not in request.headers.get("content-type", ""):
        return
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return  # the endpoint's own validation reports the malformed body
    messages = body.get("messages") if isinstance(body, dict) else None
    limit: int = request.app.state.settings.max_messages
    if isinstance(messages, list) and len(messages) > limit:
        raise TooManyMessagesError(
            f"the request holds {len(messages)} messages; at most {limit} are accepted "
            "(SEMROUTE_MAX_MESSAGES)"
        )


async def too_many_messages(request: Request, exc: Exception) -> JSONResponse:
    return error_response(413, "too_many_messages", str(exc))


class CompletionLimitMiddleware:
    """Refuses completions beyond ``max_inflight`` with 503 + Retry-After, without waiting.

    The count covers the whole response, streamed bodies included; check-and-increment has
    no ``await`` between them, so it is atomic on the event loop.
    """

    def __init__(self, app: ASGIApp, max_inflight: int, paths: frozenset[str] = COMPLETION_PATHS):
        self.app = app
        self.max_inflight = max_inflight
        self.paths = paths
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            response = error_response(
                503,
                "overloaded",
                f"{self.max_inflight} completions are already in progress; "
                f"retry after {RETRY_AFTER_S}s",
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            await response(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
