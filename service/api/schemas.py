"""Request and response bodies of the HTTP API that the routing core does not need."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.routing.types import WHOLE, Decision, RouteRequest


class CompleteRequest(RouteRequest):
    """Input of ``POST /complete``: a route request plus generation parameters for the model."""

    max_tokens: Annotated[int, Field(ge=1, le=1_000_000), WHOLE] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: Annotated[int, WHOLE] | None = None
    response_format: dict[str, Any] | None = Field(
        default=None, description='e.g. {"type": "json_object"}; an invalid JSON reply falls back.'
    )

    def chat_messages(self) -> list[dict[str, Any]]:
        if self.prompt is not None:
            return [{"role": "user", "content": self.prompt}]
        return [m.model_dump(exclude_none=True) for m in self.messages or []]

    def generation_params(self) -> dict[str, Any]:
        names = ("max_tokens", "temperature", "top_p", "stop", "seed", "response_format")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


class AttemptInfo(BaseModel):
    model: str
    role: Literal["primary", "fallback", "escalation", "review"]
    outcome: Literal["ok", "error", "timeout", "bad_answer", "skipped"]
    error_type: str | None = None
    message: str | None = None
    latency_ms: float
    cost_usd: float | None = None
    usage: dict[str, int] | None = None


class RouteInfo(BaseModel):
    name: str
    description: str
    model: str
    fallbacks: list[str]
    threshold: float
    utterances: int
    wide_utterances: int = Field(
        default=0, description="Examples only the wide encoder's classifier learns from."
    )


class ErrorBody(BaseModel):
    type: str
    message: str
    details: Any | None = None
    attempts: list[AttemptInfo] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer; with ``stream: true``, server-sent events ending in [DONE].",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "string"}},
                }
            }
        },
    }
}
"""The streamed form of a chat completion, declared beside its JSON form."""


class CompleteResponse(BaseModel):
    """A routed answer and the record of how it was obtained."""

    answer: str | None
    model: str
    finish_reason: str | None
    attempts: list[AttemptInfo]
    decision: Decision
    usage: dict[str, int] | None
    cost_usd: float | None = Field(description="Sum over all attempts; null if none is priced.")
    latency_ms: float
    reviewed: bool | None = None
    review_note: str | None = None


class FeedbackRequest(BaseModel):
    """Input of ``POST /feedback``: how good a routed answer was, and where it belonged."""

    model_config = ConfigDict(extra="forbid", strict=True)

    decision_id: str = Field(min_length=1, max_length=200)
    rating: float = Field(ge=0.0, le=1.0, description="1 = good, 0 = bad; anything between.")
    correct_route: str | None = Field(
        default=None, description="The route the request should have gone to, if not this one."
    )


class FeedbackResponse(BaseModel):
    decision_id: str
    route: str = Field(description="The route that was decided.")
    recorded: bool = True
