"""Dynamic routing inside a route: pick one of its tiered models per request.

A route may list ``models`` with a tier each (economy < balanced < best). A request asks for
a ``quality`` tier, a ``max_cost_per_1k_tokens`` or a ``max_latency_ms``.

When outcome data gives the models an expected quality for this prompt (``index/quality``),
the pick maximises ``expected quality - price / cost_quality`` among the models within the
limits (and of at least the requested tier): the cheapest one, unless a pricier one is
expected to be better by more than its extra price divided by the willingness to pay
``cost_quality`` (USD per 1k tokens for one point of quality). For two models this is
RouteLLM's rule, a threshold on the expected gain of the strong one. Ties go to the cheaper.
Models without an estimate or a price cannot be weighed and are left out of that choice.

Without estimates (no outcome data for the route's models), the prompt-complexity estimate
proposes a tier when the request names none, and the pick is the cheapest model that meets
every limit and whose tier is at least the wanted one.

Cost per 1k tokens is the mean of litellm's input and output price per token, times 1000
(a blended price: prompts and answers are priced differently, and the request does not know
the split in advance). A model absent from litellm's cost map may declare
``cost_per_1k_tokens`` in its route file; a model with no known price never satisfies a cost
limit. Latency is an exponentially weighted moving average of observed call latencies per
model (kept by the state store, fed by the completion path), with the route file's
``expected_latency_ms`` as the prior before the first observation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    cost_quality: float = 0.05  # USD per 1k tokens one point of expected quality is worth


@dataclass(frozen=True)
class ModelView:
    """A candidate model as the choice weighed it (for the decision's explanation)."""

    model: str
    tier: Tier
    expected_quality: float | None
    cost_per_1k_tokens: float | None
    value: float | None  # expected_quality - cost / cost_quality, when both are known
    allowed: bool


@dataclass(frozen=True)
class TierChoice:
    model: str
    tier: Tier
    fallbacks: tuple[str, ...]  # the route's other models, nearest stronger tier first
    note: str
    candidates: tuple[ModelView, ...] = ()


def choose_model(
    models: Sequence[TieredModel],
    wanted: Tier,
    limits: TierRequest,
    observed: Mapping[str, float],
    cost_of: dict[str, float | None],
    expected: Mapping[str, float] | None = None,
) -> TierChoice:
    """The model for this request: by expected quality and price when ``expected`` covers
    some allowed, priced model; else the cheapest meeting the limits with a tier >= ``wanted``.

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
    floor = TIER_RANK[limits.quality] if limits.quality is not None else 0
    expected = expected or {}
    views = tuple(
        ModelView(
            model=entry.model,
            tier=entry.tier,
            expected_quality=expected.get(entry.model),
            cost_per_1k_tokens=cost_of.get(entry.model),
            value=_value(expected.get(entry.model), cost_of.get(entry.model), limits.cost_quality),
            allowed=entry in allowed and TIER_RANK[entry.tier] >= floor,
        )
        for entry in models
    )
    weighable = [
        (view, entry)
        for view, entry in zip(views, models, strict=True)
        if view.allowed and view.value is not None
    ]
    if weighable:
        view, chosen = max(weighable, key=lambda pair: (pair[0].value, -cost(pair[1])))
        note = _value_note(view, [v for v, _ in weighable], limits.cost_quality)
        return _choice(models, chosen, note, order, views)
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
    return _choice(models, chosen, note, order, views)


def _value(quality: float | None, price: float | None, cost_quality: float) -> float | None:
    if quality is None or price is None:
        return None
    return quality - price / cost_quality


def _value_note(chosen: ModelView, weighed: list[ModelView], cost_quality: float) -> str:
    """Why ``chosen`` won: the cheapest weighed model, or worth its extra price over it."""
    cheapest = min(weighed, key=lambda v: (v.cost_per_1k_tokens, -(v.expected_quality or 0)))
    assert chosen.expected_quality is not None and chosen.cost_per_1k_tokens is not None
    if chosen.model == cheapest.model:
        return (
            f"cheapest model with a learned estimate ({chosen.expected_quality:.3f}); no pricier "
            f"one is expected to gain more than its extra price / cost_quality {cost_quality:g}"
        )
    assert cheapest.expected_quality is not None and cheapest.cost_per_1k_tokens is not None
    gain = chosen.expected_quality - cheapest.expected_quality
    extra = chosen.cost_per_1k_tokens - cheapest.cost_per_1k_tokens
    return (
        f"expected quality {chosen.expected_quality:.3f} vs {cheapest.expected_quality:.3f} "
        f"of {cheapest.model}: a gain of {gain:.3f} is worth its extra ${extra:.4g}/1k tokens "
        f"at cost_quality {cost_quality:g}"
    )


def _choice(
    models: Sequence[TieredModel],
    chosen: TieredModel,
    note: str,
    order: Callable[[TieredModel], tuple[float, int]],
    views: tuple[ModelView, ...],
) -> TierChoice:
    """The choice of ``chosen``, with the route's other models as its fallbacks."""
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
        candidates=views,
    )
