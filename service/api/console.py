"""GET /ui: the web console, static files shipped inside the package, served by the service.

No build step and nothing fetched from elsewhere: plain ES modules, one stylesheet, SVG
charts drawn by the page itself, so the console works offline and behind any proxy. The
page and ``/ui/config.json`` load without a key (``auth.OPEN_PREFIXES``); everything the
page shows comes from the keyed endpoints, so a visitor without a key sees the key prompt
and no data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/ui"

router = APIRouter(tags=["console"])


class ConsoleConfig(BaseModel):
    """What the page must know before it may ask for data: whether to ask for keys first."""

    keys_required: bool
    admin_enabled: bool


@router.get(f"{PREFIX}/config.json", response_model=ConsoleConfig)
async def console_config(request: Request) -> ConsoleConfig:
    """Whether the service wants an API key, and whether the admin endpoints are on."""
    settings = request.app.state.settings
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else ""
    return ConsoleConfig(keys_required=bool(settings.api_key_list()), admin_enabled=bool(admin_key))


@router.api_route(PREFIX, methods=["GET", "HEAD"], include_in_schema=False)
async def console_root() -> RedirectResponse:
    """``/ui`` -> ``/ui/``: the page resolves the API relative to its own folder. Relative,
    so it stays right behind a proxy that serves the service under a path prefix."""
    return RedirectResponse("ui/", status_code=307)


def mount_console(app: FastAPI) -> None:
    """The console's routes, then its files (after, so ``config.json`` is not looked up
    among the files)."""
    app.include_router(router)
    app.mount(PREFIX, StaticFiles(directory=STATIC_DIR, html=True), name="console")
