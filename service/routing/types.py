"""The router's own request and decision types, shared by every layer above routing.

They are pydantic models because the HTTP API speaks them as they are; the routing core
owns them so that it never imports from the HTTP edge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


WHOLE = BeforeValidator(_whole)
"""For an ``int`` of a strict model: JSON's ``5.0`` is the integer 5 (as JSON Schema says),
while ``true`` and ``"5"`` stay refused. Put it after the field's limits in ``Annotated``."""

Method = Literal["override", "rule", "semantic", "llm", "default", "context"]
MetadataValue = str | int | float | bool | None
OPEN = ConfigDict(extra="allow", strict=True)
"""OpenAI-shaped parts: fields the router does not read are passed on to the model."""


class TextPart(BaseModel):
    """A text part of an OpenAI-style multi-part message: the only kind with routable text."""

    model_config = OPEN

    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    model_config = OPEN

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    model_config = OPEN

    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(BaseModel):
    model_config = OPEN

    data: str
    format: Literal["wav", "mp3"]


class AudioPart(BaseModel):
    model_config = OPEN

    type: Literal["input_audio"]
    input_audio: InputAudio


class FileData(BaseModel):
    model_config = OPEN

    file_id: str | None = None
    file_data: str | None = None
    filename: str | None = None


class FilePart(BaseModel):
    model_config = OPEN

    type: Literal["file"]
    file: FileData


ContentPart = Annotated[TextPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")]
"""OpenAI's user content parts, each with the field its type needs: a part the model's API
would refuse (litellm checks them) is a 422 here, not a failed model call later."""


CONTENT_RULE: dict[str, Any] = {
    "anyOf": [
        {"properties": {"role": {"const": "assistant"}}},
        {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
    ]
}
"""Only an assistant message (one that calls tools) may come without content, in JSON schema."""


class Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra=CONTENT_RULE)

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart) and p.text)

    @model_validator(mode="after")
    def _has_content(self) -> Message:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a '{self.role}' message needs 'content'")
        return self


NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""JSON-schema pattern of a text with something in it besides white space: the characters
listed are exactly those ``str.strip()`` removes (``\\S`` would differ between Python and
ECMA-262 regular expressions on a few of them, such as U+0085 and U+FEFF)."""

USER_TEXT: dict[str, Any] = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"const": "user"},
        "content": {
            "anyOf": [
                {"type": "string", "pattern": NOT_BLANK},
                {
                    "type": "array",
                    "contains": {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"const": "text"},
                            "text": {"type": "string", "pattern": NOT_BLANK},
                        },
                    },
                },
            ]
        },
    },
}
"""JSON schema of a message the router can route: a user message with some text in it.

A chat must contain one (``contains``), which is what ``RouteRequest._one_source`` checks;
the schema says so, so a client generated from ``/openapi.json`` is not surprised by a 422."""

ONE_SOURCE: dict[str, Any] = {
    "oneOf": [
        {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
        {"required": ["messages"], "properties": {"messages": {"type": "array"}}},
    ]
}
"""Exactly one of ``prompt`` or ``messages`` (the other absent or null), in JSON schema."""


class RouteRequest(BaseModel):
    """Input of ``POST /route``: a prompt or a chat, and optional routing hints."""

    # Strict: the JSON types the schema declares are the ones accepted (no 0 for false).
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=ONE_SOURCE)

    prompt: str | None = Field(
        default=None, description="The text to route.", json_schema_extra={"pattern": NOT_BLANK}
    )
    messages: list[Message] | None = Field(
        default=None,
        description="A chat; the last user message is routed.",
        json_schema_extra={"contains": USER_TEXT},
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
