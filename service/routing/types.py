"""The router's own request and decision types, shared by every layer above routing.

They are pydantic models because the HTTP API speaks them as they are; the routing core
owns them so that it never imports from the HTTP edge."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["override", "rule", "semantic", "llm", "default", "context"]
MetadataValue = str | int | float | bool | None


class TextPart(BaseModel):
    """One part of an OpenAI-style multi-part message; only text parts carry routable text."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if part.text)


class RouteRequest(BaseModel):
    """Input of ``POST /route``: a prompt or a chat, and optional routing hints."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, description="The text to route.")
    messages: list[Message] | None = Field(
        default=None, description="A chat; the last user message is routed."
    )
    route: str | None = Field(default=None, description="Force this route (static routing).")
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    explain: bool = Field(default=False, description="Include the nearest utterances.")
    tiebreak: bool = Field(
        default=True, description="Let the LLM tie-breaker settle weak or close matches."
    )
    quality: Literal["economy", "balanced", "best"] | None = Field(
        default=None,
        description="Tier wanted among a route's tiered models; else the prompt's complexity.",
    )
    max_cost_per_1k_tokens: float | None = Field(
        default=None, ge=0, description="Blended USD price limit for a route's tiered models."
    )
    max_latency_ms: float | None = Field(
        default=None, gt=0, description="Expected-latency limit for a route's tiered models."
    )
    cost_quality: float | None = Field(
        default=None,
        gt=0,
        description="Willingness to pay: USD per 1k tokens that one point of expected quality "
        "(0 -> 1) is worth when choosing among a route's models; else router.yaml's.",
    )
    conversation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Keeps a conversation on its route unless a turn clearly belongs elsewhere.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> RouteRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' is empty")
        if self.messages is not None and not self.routable_text().strip():
            raise ValueError("'messages' holds no user message with text")
        return self

    def routable_text(self) -> str:
        """The text the router embeds: the prompt, or the last user message with text."""
        if self.prompt is not None:
            return self.prompt
        for message in reversed(self.messages or []):
            if message.role == "user" and message.text().strip():
                return message.text()
        return ""

    def user_turns(self) -> list[str]:
        """Every user message with text, oldest first (the prompt alone for ``prompt``)."""
        if self.prompt is not None:
            return [self.prompt]
        texts = [m.text() for m in self.messages or [] if m.role == "user"]
        return [text for text in texts if text.strip()]


class Candidate(BaseModel):
    route: str
    score: float


class Match(BaseModel):
    route: str
    utterance: str
    similarity: float


class ModelCandidate(BaseModel):
    """One of a route's models as the model choice saw it."""

    model: str
    tier: str
    expected_quality: float | None = Field(
        description="Expected score in [0, 1] learned from outcome data; null without any."
    )
    expected_cost_per_1k_tokens: float | None = Field(
        description="Blended USD price per 1k tokens; null when unknown."
    )
    value: float | None = Field(
        description="expected_quality - cost / cost_quality: what the choice maximises."
    )
    allowed: bool = Field(description="Within the request's limits and quality tier.")


class Decision(BaseModel):
    """What the router decided and why; returned by ``/route`` and inside ``/complete``."""

    route: str
    model: str
    fallbacks: list[str]
    method: Method
    score: float | None = Field(description="The chosen route's raw semantic score.")
    confidence: float | None = Field(
        description="Probability that the route is right, once calibrated; else null."
    )
    margin: float | None
    candidates: list[Candidate]
    matches: list[Match] | None = None
    reason: str | None = Field(
        default=None,
        description="Why the semantic top route was not taken, when it was not; "
        "for method 'rule', which rule matched.",
    )
    tier: str | None = Field(
        default=None, description="Tier of the chosen model, for a route with tiered models."
    )
    complexity: float | None = Field(
        default=None, description="Estimated probability that the prompt is hard, when used."
    )
    model_candidates: list[ModelCandidate] | None = Field(
        default=None, description="The route's models with expected quality and cost, when tiered."
    )
    model_reason: str | None = Field(
        default=None, description="Why the chosen model won, for a route with tiered models."
    )
    latency_ms: float
    decision_id: str
    index_fingerprint: str
