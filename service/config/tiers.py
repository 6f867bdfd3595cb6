"""Tier names and the ``models:`` entry of a route file (choosing among them: routing)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Tier = Literal["economy", "balanced", "best"]
TIERS: tuple[Tier, ...] = ("economy", "balanced", "best")
TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}


class TieredModel(BaseModel):
    """One entry of a route's ``models:`` list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    tier: Tier
    cost_per_1k_tokens: float | None = Field(
        default=None, ge=0, description="Blended USD price; else litellm's cost map."
    )
    expected_latency_ms: float | None = Field(
        default=None, gt=0, description="Prior latency before any call was observed."
    )

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("must be a litellm model string without spaces")
        return value
