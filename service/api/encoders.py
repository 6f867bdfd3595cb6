"""Loading the configured encoders, apart from the app so that start-up can begin it early.

Why a module of its own: ``python -m service`` starts loading the encoders (seconds of ONNX
session set-up, mostly outside the GIL) on a thread before it imports the app, whose imports
(litellm above all) take seconds of their own; this module imports neither the app nor litellm.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from service.config.settings import Settings
from service.encoding.e5 import load_wide_encoder
from service.encoding.encoder import BaseEncoder, load_encoder
from service.encoding.scripts import load_language_identifier


def load_primary(settings: Settings) -> BaseEncoder:
    """The primary encoder the settings name."""
    return load_encoder(
        settings.embedding_model,
        settings.encoder_backend,
        settings.embedding_device,
        settings.encode_cache_size,
        settings.encoder_threads,
        settings.onnx_graph,
        settings.cache_dir,
    )


def load_wide(settings: Settings) -> BaseEncoder | None:
    """The wide encoder the settings name, or None when it is off; with it, the language
    identifier that decides which Latin-script prompts take it."""
    wide = load_wide_encoder(
        settings.wide_model,
        settings.encode_cache_size,
        settings.wide_threads,
        cache_dir=settings.cache_dir,
    )
    if wide is not None:
        load_language_identifier()
    return wide


def start_loading(settings: Settings) -> Future[tuple[BaseEncoder, BaseEncoder | None]]:
    """Both encoders, loading on a thread of their own; the result is (primary, wide)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semroute-encoders")
    future = pool.submit(lambda: (load_primary(settings), load_wide(settings)))
    pool.shutdown(wait=False)
    return future
