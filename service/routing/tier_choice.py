"""Dynamic routing inside a route: pick one of its tiered models per request.

A route may list ``models`` with a tier each (economy < balanced < best). A request asks for
a ``quality`` tier, a ``max_cost_per_1k_tokens`` or a ``max_latency_ms``; without a quality,
the prompt-complexity estimate proposes one. The pick is the cheapest model that meets every
limit and whose tier is at least the wanted one.

Cost per 1k tokens is the mean of litellm's input and output price per token, times 1000
(a blended price: prompts and answers are priced differently, and the request does not know
the split in advance). A model absent from litellm's cost map may declare
``cost_per_1k_tokens`` in its route file; a model with no known price never satisfies a cost
limit. Latency is an exponentially weighted moving average of observed call latencies per
model (kept by the state store, fed by the completion path), with the route file's
``expected_latency_ms`` as the prior before the first observation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.config.tiers import TIER_RANK, Tier, TieredModel


def litellm_cost_per_1k(model: str) -> float | None:
    """Blended USD per 1k tokens from litellm's cost map, or None when it has no price."""
    import litellm

    try:
        info = litellm.get_model_info(model)
    except Exception:  # litellm raises a bare Exception for an unmapped model
        return None
    prices = [info.get("input_cost_per_token"), info.get("output_cost_per_token")]
    known = [float(price) for price in prices if price is not None]
    return sum(known) / len(known) * 1000 if known else None


@dataclass(frozen=True)
class TierRequest:
    """What the request asked for; all None means "let the complexity estimate decide"."""

    quality: Tier | None = None
    max_cost_per_1k_tokens: float | None = None
    max_latency_ms: float | None = None


@dataclass(frozen=True)
class TierChoice:
    model: str
    tier: Tier
    fallbacks: tuple[str, ...]  # the route's other models, nearest stronger tier first
    note: str


def choose_model(
    models: Sequence[TieredModel],
    wanted: Tier,
    limits: TierRequest,
    observed: Mapping[str, float],
    cost_of: dict[str, float | None],
) -> TierChoice:
    """The cheapest model meeting the limits with a tier >= ``wanted``.

    When no model meets the limits, the cheapest priced model is used (limits are a
    preference the route cannot honour, not a reason to fail the request). When models meet
    the limits but none reaches ``wanted``, the strongest of them is used.
    """

    def cost(entry: TieredModel) -> float:
        price = cost_of.get(entry.model)
        return float("inf") if price is None else price

    def within_limits(entry: TieredModel) -> bool:
        if limits.max_cost_per_1k_tokens is not None:
            price = cost_of.get(entry.model)
            if price is None or price > limits.max_cost_per_1k_tokens:
                return False
        if limits.max_latency_ms is not None:
            expected = observed.get(entry.model, entry.expected_latency_ms)
            if expected is not None and expected > limits.max_latency_ms:
                return False
        return True

    def order(entry: TieredModel) -> tuple[float, int]:
        return cost(entry), TIER_RANK[entry.tier]

    allowed = [entry for entry in models if within_limits(entry)]
    if not allowed:
        chosen = min(models, key=order)
        note = "no model meets the limits; cheapest used"
    else:
        strong_enough = [e for e in allowed if TIER_RANK[e.tier] >= TIER_RANK[wanted]]
        if strong_enough:
            chosen = min(strong_enough, key=order)
            note = f"cheapest model of tier >= {wanted}"
        else:
            chosen = max(allowed, key=lambda e: (TIER_RANK[e.tier], -cost(e)))
            note = f"no model of tier >= {wanted} within the limits; strongest allowed used"
    others = [entry for entry in models if entry.model != chosen.model]
    rank = TIER_RANK[chosen.tier]
    stronger = sorted((e for e in others if TIER_RANK[e.tier] >= rank), key=order)
    weaker = sorted(
        (e for e in others if TIER_RANK[e.tier] < rank), key=lambda e: -TIER_RANK[e.tier]
    )
    return TierChoice(
        model=chosen.model,
        tier=chosen.tier,
        fallbacks=tuple(entry.model for entry in stronger + weaker),
        note=note,
    )
