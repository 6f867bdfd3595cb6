"""Cooldowns of failing models, with litellm Router's semantics.

Which failures count is litellm's rule (``router_utils.cooldown_handlers``): timeouts, rate
limits (429), auth and not-found errors (401, 402, 404, 408) and every 5xx do; other 4xx do
not, since a bad request fails on every model alike; nor do connection errors raised
before any provider answered (litellm's ``APIConnectionError``), nor answers the chain
rejected (empty, truncated, invalid JSON): the provider is up. How many count is the
route set's ``CooldownPolicy``: more than ``allowed_fails`` within ``window_s`` of the
first one start a cooldown of ``cooldown_s``; the counter then starts over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import litellm

from service.config.routes import CooldownPolicy

COOLING_CLIENT_ERRORS = frozenset({401, 402, 404, 408, 429})


def counts_toward_cooldown(error: BaseException) -> bool:
    """True for a failure that says the model, not the request, is the problem."""
    if isinstance(error, TimeoutError | litellm.Timeout):
        return True
    if isinstance(error, litellm.APIConnectionError):
        return False
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        return False
    return status in COOLING_CLIENT_ERRORS if 400 <= status < 500 else status >= 500


class CooldownBook:
    """In-process failure counts and cooldowns; the clock is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._fails: dict[str, tuple[int, float]] = {}  # model -> (failures, window end)
        self._until: dict[str, float] = {}

    def failed(self, model: str, policy: CooldownPolicy) -> bool:
        if policy.cooldown_s <= 0:
            return False
        now = self._clock()
        count, ends = self._fails.get(model, (0, now + policy.window_s))
        if now >= ends:
            count, ends = 0, now + policy.window_s
        count += 1
        if count > policy.allowed_fails:
            self._fails.pop(model, None)
            self._until[model] = now + policy.cooldown_s
            return True
        self._fails[model] = (count, ends)
        return False

    def remaining(self, models: Iterable[str]) -> dict[str, float]:
        now = self._clock()
        for model in [m for m, until in self._until.items() if until <= now]:
            del self._until[model]
        return {m: self._until[m] - now for m in models if m in self._until}
