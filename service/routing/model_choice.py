"""The model for a decided route: a rule's own model, or a pick among the route's tiers.

Pure decision rewriting; the estimates (expected quality per model from outcome data, or
else the complexity estimate that proposes a tier) are computed by the caller, which alone
knows whether the prompt's embedding is at hand (see ``router``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from service.config.dedup import unique
from service.config.routes import Route
from service.index import complexity
from service.routing.tier_choice import ModelView, TierRequest, choose_model, litellm_cost_per_1k
from service.routing.types import Decision, ModelCandidate, RouteRequest


def model_costs(routes: Iterable[Route]) -> dict[str, float | None]:
    """Blended price per 1k tokens of every tiered model: the route file's, else litellm's."""
    return {
        entry.model: entry.cost_per_1k_tokens
        if entry.cost_per_1k_tokens is not None
        else litellm_cost_per_1k(entry.model)
        for route in routes
        for entry in route.models
    }


def with_rule_model(route: Route, decision: Decision, model: str) -> Decision:
    """A rule named its model: use it, and keep the route's other models as fallbacks."""
    chain = [route.model, *(entry.model for entry in route.models), *route.fallbacks]
    fallbacks = unique(m for m in chain if m != model)
    return decision.model_copy(update={"model": model, "fallbacks": fallbacks})


def with_tiered_model(
    route: Route,
    decision: Decision,
    request: RouteRequest,
    hard: float | None,
    latency: Mapping[str, float],
    costs: dict[str, float | None],
    expected: Mapping[str, float] | None = None,
    cost_quality: float = 0.05,
) -> Decision:
    """One of the route's tiered models for this request.

    With ``expected`` (model -> expected quality from outcome data) the pick weighs quality
    against price (``tier_choice.choose_model``). Otherwise the wanted tier is the request's
    ``quality``; without one, the tier the complexity estimate ``hard`` (the probability
    that the prompt is hard) suggests; without an estimate, the tier of the route's own model.
    """
    wanted = request.quality
    if wanted is None:
        if hard is not None:
            wanted = complexity.tier_for(hard)
        else:
            own = [entry.tier for entry in route.models if entry.model == route.model]
            wanted = own[0] if own else "balanced"
    limits = TierRequest(
        request.quality,
        request.max_cost_per_1k_tokens,
        request.max_latency_ms,
        request.cost_quality or cost_quality,
    )
    choice = choose_model(route.models, wanted, limits, latency, costs, expected)
    reason = decision.reason
    if choice.note.startswith("no model"):
        reason = f"{reason}; {choice.note}" if reason else choice.note
    return decision.model_copy(
        update={
            "model": choice.model,
            "fallbacks": unique(
                m for m in (*choice.fallbacks, *route.fallbacks) if m != choice.model
            ),
            "tier": choice.tier,
            "complexity": None if hard is None else round(hard, 4),
            "reason": reason,
            "model_candidates": [_candidate(view) for view in choice.candidates],
            "model_reason": choice.note,
        }
    )


def _candidate(view: ModelView) -> ModelCandidate:
    def rounded(value: float | None, digits: int) -> float | None:
        return None if value is None else round(value, digits)

    return ModelCandidate(
        model=view.model,
        tier=view.tier,
        expected_quality=rounded(view.expected_quality, 4),
        expected_cost_per_1k_tokens=rounded(view.cost_per_1k_tokens, 8),
        value=rounded(view.value, 4),
        allowed=view.allowed,
    )
