"""A bounded, thread-safe least-recently-used map: the one cache every bounded memory uses.

The encoder's embeddings, the tie-breaker's answers, conversation routes and recent
decision ids all keep "the last N" of something. ``functools.lru_cache`` wraps a function
and cannot be filled in batches or consulted without computing; this is the map itself.
A size of zero (or less) keeps nothing, which is how each of them is switched off.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``max_size`` entries; a read or a write makes an entry the most recent."""

    def __init__(self, max_size: int):
        self.max_size = max_size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self.max_size <= 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
