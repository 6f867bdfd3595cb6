"""Bearer-key authentication for every endpoint, as pure ASGI middleware.

Middleware rather than a per-route dependency, so that an endpoint added later (OpenAI API,
metrics, ...) is covered without anyone remembering to protect it. Rules:

- ``/healthz`` and ``/readyz`` are always open (orchestrators probe them without keys), and
  so are the console's static files under ``/ui/``, which hold no data: the page asks for a
  key and sends it to the keyed endpoints;
- with ``SEMROUTE_API_KEYS`` set, every other path needs ``Authorization: Bearer <key>``;
- ``/admin/*`` needs ``SEMROUTE_ADMIN_KEY`` and nothing else; without that key configured
  the admin endpoints are off (403), whatever the API keys.

Keys are compared with ``hmac.compare_digest`` against every configured key, so the time
taken says nothing about how close a guess was, nor which key matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_response

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/ui"})
OPEN_PREFIXES = ("/ui/",)
ADMIN_PREFIX = "/admin/"


def bearer_token(scope: Scope) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return bytes(token.strip())
            return None
    return None


def key_matches(token: bytes | None, keys: Iterable[bytes]) -> bool:
    """Constant-time membership: every key is compared, whichever matches."""
    if token is None:
        return False
    found = False
    for key in keys:
        found |= hmac.compare_digest(token, key)
    return found


class AuthMiddleware:
    def __init__(self, app: ASGIApp, api_keys: Iterable[str], admin_key: str | None):
        self.app = app
        self.api_keys = tuple(key.encode() for key in api_keys)
        self.admin_key = admin_key.encode() if admin_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        if path.startswith(ADMIN_PREFIX) or path == ADMIN_PREFIX.rstrip("/"):
            if self.admin_key is None:
                response = error_response(
                    403,
                    "admin_disabled",
                    "the admin endpoints are off; set SEMROUTE_ADMIN_KEY to enable them",
                )
                await response(scope, receive, send)
                return
            allowed: tuple[bytes, ...] = (self.admin_key,)
        elif self.api_keys:
            allowed = self.api_keys
        else:
            await self.app(scope, receive, send)
            return
        if key_matches(bearer_token(scope), allowed):
            await self.app(scope, receive, send)
            return
        response = error_response(
            401,
            "unauthorized",
            "send a valid key as 'Authorization: Bearer <key>'"
            + (" (the admin key)" if allowed is not self.api_keys else ""),
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)
