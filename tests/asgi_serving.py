"""An app served in the test's own event loop, so tests can hold requests open concurrently,
send signals to the process, and look at ``asyncio.all_tasks()`` around requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx


@asynccontextmanager
async def serving(app: Any, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan, then yield a client that calls it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://semroute.test", headers=headers, timeout=30
        ) as client:
            yield client
