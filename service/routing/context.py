"""Conversation context: earlier user turns as weaker evidence, and sticky routes.

Two mechanisms, both measured on ``tests/data/multiturn.jsonl`` (see README, Conversations):

- **Context vector.** A follow-up such as "and in Java?" says little on its own. The routed
  vector is the normalised weighted sum of the latest user turn's embedding (weight
  ``LATEST_WEIGHT``) and the mean of up to ``EARLIER_TURNS`` previous user turns' embeddings
  (the rest). Assistant turns are left out: they echo the topic but carry the model's
  wording, not the user's task.
- **Stickiness.** With a ``conversation_id`` the router remembers the route of the
  conversation's last decision (in the state store: a bounded LRU in process, or Redis
  shared by replicas) and keeps it unless the new turn's
  semantic decision is accepted with a confidence (classifier) or margin (knn) of at least
  ``router.yaml``'s ``stickiness``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.config.routes import RouteSet
from service.routing.types import Decision

LATEST_WEIGHT = 0.7
EARLIER_TURNS = 2


def context_turns(user_turns: Sequence[str]) -> list[str]:
    """The turns the context vector is built from: earlier ones first, the latest last."""
    return list(user_turns[-(EARLIER_TURNS + 1) :])


def combine(vectors: np.ndarray, latest_weight: float = LATEST_WEIGHT) -> np.ndarray:
    """One unit vector from rows ordered oldest -> latest (see the module docstring)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) == 1:
        return vectors[0]
    mixed = latest_weight * vectors[-1] + (1 - latest_weight) * vectors[:-1].mean(axis=0)
    norm = float(np.linalg.norm(mixed))
    return (mixed / norm if norm else mixed).astype(np.float32)


def stick(decision: Decision, previous: str | None, route_set: RouteSet) -> Decision:
    """Keep the conversation's previous route unless the new turn clearly belongs elsewhere.

    Clearly: an accepted semantic decision whose confidence (classifier scoring) or margin
    (knn scoring) reaches ``stickiness``. Override and rule decisions always stand.
    ``previous`` is the route of the conversation's last decision, None for a new one.
    """
    if previous is None or previous == decision.route or decision.method in ("override", "rule"):
        return decision
    if decision.method == "semantic" and decision.reason is None:
        clarity = decision.confidence if decision.confidence is not None else decision.margin
        if clarity is not None and clarity >= route_set.config.stickiness:
            return decision
    route = route_set.get(previous)
    if route is None:  # the route was removed by a reload
        return decision
    return decision.model_copy(
        update={
            "route": route.name,
            "model": route.model,
            "fallbacks": list(route.fallbacks),
            "method": "context",
            "score": next((c.score for c in decision.candidates if c.route == previous), None),
            "confidence": None,
            "reason": f"conversation stays on '{previous}': '{decision.route}' "
            f"({decision.method}) was not clear enough",
        }
    )
