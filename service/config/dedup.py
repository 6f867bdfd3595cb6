"""What counts as "the same" twice: texts that differ only in case and spacing, repeated items.

Route loading (duplicate utterances), the tie-breaker's cache key, feedback snippets
(prompts that already are utterances), fallback chains and the completion chain (each model
once) all ask this question; one answer keeps them agreeing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")


def normalise(text: str) -> str:
    """Case-folded, with every run of white space one space and none at either end."""
    return " ".join(text.casefold().split())


def unique(items: Iterable[T], key: Callable[[T], Hashable] | None = None) -> list[T]:
    """``items`` in order, each (by ``key``, default the item itself) kept the first time only."""
    seen: set[Hashable] = set()
    kept = []
    for item in items:
        mark = item if key is None else key(item)
        if mark not in seen:
            seen.add(mark)
            kept.append(item)
    return kept
