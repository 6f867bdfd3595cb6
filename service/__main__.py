"""``python -m service``: check routes and index, then serve with uvicorn.

The check runs before uvicorn starts so that a missing or stale index ends the process
with one readable message and the command that fixes it, not a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import Future

import uvicorn

from service.api import encoders
from service.config.settings import Settings
from service.encoding.encoder import BaseEncoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    settings = Settings()
    # One worker loads its encoders here, on a thread, while the app's modules are imported
    # (litellm alone takes seconds) and the index is checked: the two overlap.
    loading = encoders.start_loading(settings) if args.workers == 1 else None
    from service.api.app import StartupError, create_app, load_state

    try:
        loaded = load_state(settings)
    except StartupError as error:
        print(f"semroute cannot start:\n{error}", file=sys.stderr)
        return 2
    if args.workers > 1 and "SEMROUTE_ENCODER_THREADS" not in os.environ:
        # Each worker has its own encoder; together they should not ask for more threads
        # than there are cores, or they preempt one another mid-batch.
        threads = max(1, (os.cpu_count() or 1) // args.workers)
        os.environ["SEMROUTE_ENCODER_THREADS"] = str(threads)
    if args.workers == 1:
        # One process: serve the routes and index just checked, not a second reading of them
        # (hashing every index file again cost a quarter of a second of the start).
        primary, wide = _loaded_encoders(loading)
        uvicorn.run(
            create_app(settings, encoder=primary, wide_encoder=wide, loaded=loaded),
            host=args.host,
            port=args.port,
            workers=1,
            log_level=args.log_level,
        )
        return 0
    uvicorn.run(
        "service.api.app:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0


def _loaded_encoders(
    loading: Future[tuple[BaseEncoder, BaseEncoder | None]] | None,
) -> tuple[BaseEncoder | None, BaseEncoder | None]:
    """The encoders loaded early, or (None, None): the app then loads them itself in its
    lifespan, where a failure is reported as it always was."""
    if loading is None:
        return None, None
    try:
        primary, wide = loading.result()
    except Exception:  # the lifespan loads them again and reports the failure
        return None, None
    return primary, wide


if __name__ == "__main__":
    sys.exit(main())
