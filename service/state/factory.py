"""The state store the settings ask for: Redis when ``SEMROUTE_REDIS_URL`` is set, else local."""

from __future__ import annotations

from service.config.settings import Settings
from service.state.local import LocalState
from service.state.redis_state import RedisState
from service.state.store import StateStore


def open_state(settings: Settings, max_conversations: int) -> StateStore:
    """``max_conversations`` is router.yaml's ``conversation_cache_size`` at start-up."""
    local = LocalState(max_conversations, settings.recent_decisions)
    if settings.redis_url is None:
        return local
    return RedisState(
        settings.redis_url.get_secret_value(),
        local,
        prefix=settings.redis_prefix,
        ttl_s=settings.state_ttl_s,
        timeout_s=settings.redis_timeout_s,
        retry_s=settings.redis_retry_s,
        max_connections=settings.redis_max_connections,
    )
