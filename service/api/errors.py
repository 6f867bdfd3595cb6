"""JSON error responses: one shape, ``{"error": {"type", "message"}}``, for every failure.

Clients get a 4xx that says what to change for their own mistakes, and never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.routing.router import PromptTooLargeError, UnknownRouteError

log = logging.getLogger("semroute")


def error_response(
    status: int,
    type_: str,
    message: str,
    details: Any = None,
    attempts: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "message": message}
    if details is not None:
        body["details"] = details
    if attempts is not None:
        body["attempts"] = attempts
    return JSONResponse(status_code=status, content={"error": body}, headers=headers)


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    content_type = request.headers.get("content-type", "")
    if request.method in {"POST", "PUT", "PATCH"} and "json" not in content_type:
        return error_response(
            415,
            "unsupported_media_type",
            f"send the body as JSON with 'Content-Type: application/json' (got '{content_type}')",
        )
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": _describe(e)}
        for e in errors
    ]
    message = "; ".join(_describe(error) for error in errors[:5])
    return error_response(422, "invalid_request", message, details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kinds = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    type_ = kinds.get(exc.status_code, "http_error")
    # Starlette's 405 carries ``Allow`` (RFC 9110 requires it); keep whatever headers it set.
    return error_response(exc.status_code, type_, str(exc.detail), headers=exc.headers)


async def _unknown_route(request: Request, exc: Exception) -> JSONResponse:
    return error_response(400, "unknown_route", str(exc))


async def _prompt_too_large(request: Request, exc: Exception) -> JSONResponse:
    return error_response(413, "prompt_too_large", str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "the router failed unexpectedly; see its log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(UnknownRouteError, _unknown_route)
    app.add_exception_handler(PromptTooLargeError, _prompt_too_large)
    app.add_exception_handler(Exception, _unexpected)


class BodyLimitMiddleware:
    """Rejects bodies over ``max_bytes`` with 413 before they are parsed or buffered whole.

    Checks the declared Content-Length first, then counts streamed chunks, so a chunked
    upload cannot slip past the limit either.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_response(
            413, "request_too_large", f"the request body exceeds {self.max_bytes} bytes"
        )
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await too_large(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, f"the request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)
