"""OpenAI-compatible chat completions: any OpenAI client gets routed answers by changing base_url.

``model: "auto"`` lets the router decide; ``model: "<route name>"`` forces that route. The
answer comes from the same fallback chain as ``/complete``; with ``stream: true`` it arrives as
server-sent events, and fallback is possible only until the first chunk. The decision travels
in ``x-semroute-*`` response headers, the model that answered in the body's ``model``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from service.api.answering import answer, finished
from service.api.engine import Engine, current_engine
from service.api.routing_api import CLIENT_ERRORS
from service.api.schemas import EVENT_STREAM, ErrorResponse
from service.ops.monitoring import Monitor, current_monitor
from service.routing.types import (
    USER_TEXT,
    WHOLE,
    Decision,
    Message,
    MetadataValue,
    RouteRequest,
)

router = APIRouter(prefix="/v1")
AUTO = "auto"
PASS_THROUGH = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "reasoning_effort",
)
"""Body fields handed to the model unchanged. Others are ignored: in particular nothing a
client sends can change where a call goes (api_base, api_key, ...)."""


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat completion request that a router can honour."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(description='"auto" to route, or a route name to force that route.')
    messages: list[Message] = Field(min_length=1, json_schema_extra={"contains": USER_TEXT})
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: Annotated[int, Field(ge=1), WHOLE] | None = Field(
        default=None, json_schema_extra={"maximum": 1}
    )
    metadata: dict[str, MetadataValue] | None = None
    # semroute's routing hints, sent by OpenAI clients through ``extra_body``.
    quality: Literal["economy", "balanced", "best"] | None = None
    max_cost_per_1k_tokens: float | None = Field(default=None, ge=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    cost_quality: float | None = Field(default=None, gt=0)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200)
    tiebreak: bool = True

    _route_request: RouteRequest | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _supported(self) -> ChatCompletionRequest:
        if self.n is not None and self.n > 1:
            raise ValueError("n > 1 is not supported: the router returns one choice per request")
        try:
            self._route_request = RouteRequest(
                messages=self.messages,
                route=None if self.model == AUTO else self.model,
                metadata=self.metadata or {},
                quality=self.quality,
                max_cost_per_1k_tokens=self.max_cost_per_1k_tokens,
                max_latency_ms=self.max_latency_ms,
                cost_quality=self.cost_quality,
                conversation_id=self.conversation_id,
                tiebreak=self.tiebreak,
            )
        except ValidationError as error:
            problems = (str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
            raise ValueError("; ".join(problems)) from None
        return self

    def route_request(self) -> RouteRequest:
        """What the router sees: the chat, and the route named by ``model`` unless "auto"."""
        assert self._route_request is not None
        return self._route_request

    def chat_messages(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    def generation_params(self) -> dict[str, Any]:
        extra = self.model_extra or {}
        params = {name: extra[name] for name in PASS_THROUGH if extra.get(name) is not None}
        if self.stream and self.stream_options:
            params["stream_options"] = self.stream_options
        return params


def decision_headers(decision: Decision, served: str | None) -> dict[str, str]:
    """The decision in headers; confidence is "unknown" until a calibrated scorer gives one."""
    headers = {
        "x-semroute-route": decision.route,
        "x-semroute-model": decision.model,
        "x-semroute-method": decision.method,
        "x-semroute-confidence": "unknown"
        if decision.confidence is None
        else f"{decision.confidence:g}",
        "x-semroute-decision-id": decision.decision_id,
    }
    if decision.score is not None:
        headers["x-semroute-score"] = f"{decision.score:g}"
    if served:
        headers["x-semroute-served-model"] = served
    if decision.model_candidates:
        headers["x-semroute-model-candidates"] = ", ".join(
            f"{c.model};quality={_number(c.expected_quality)};"
            f"cost_per_1k={_number(c.expected_cost_per_1k_tokens)}"
            for c in decision.model_candidates
        )
    if decision.model_reason:
        headers["x-semroute-model-reason"] = decision.model_reason
    return headers


def _number(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4g}"


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


@router.post(
    "/chat/completions",
    responses={
        **CLIENT_ERRORS,
        **EVENT_STREAM,
        **{code: {"model": ErrorResponse} for code in (502, 503, 504)},
    },
)
async def chat_completions(
    body: ChatCompletionRequest,
    engine: Annotated[Engine, Depends(current_engine)],
    monitor: Annotated[Monitor, Depends(current_monitor)],
) -> Any:
    """Route the chat, answer it with the chosen model (falling back on failure), OpenAI-style."""
    outcome = await answer(
        engine,
        monitor,
        body.route_request(),
        "openai",
        body.chat_messages(),
        body.generation_params(),
        stream=body.stream,
    )
    if isinstance(outcome, JSONResponse):
        return outcome
    decision, result, streamed = outcome.decision, outcome.result, outcome.stream
    if streamed is None:
        response: Any = result.response
        payload = response.model_dump(exclude_none=True)
        payload["model"] = result.model
        return JSONResponse(payload, headers=decision_headers(decision, result.model))
    served = result.model

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in streamed.chunks():
                payload = chunk.model_dump(exclude_none=True)
                payload["model"] = served
                yield _event(payload)
            if streamed.failure:
                yield _event({"error": {"type": "stream_failed", "message": streamed.failure}})
            else:
                yield "data: [DONE]\n\n"
        finally:
            await finished(engine, monitor, decision, result, outcome.started)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={**decision_headers(decision, served), "cache-control": "no-cache"},
    )


@router.get("/models")
async def models(engine: Annotated[Engine, Depends(current_engine)]) -> dict[str, Any]:
    """ "auto" and every route name: the values ``model`` accepts."""
    names = [AUTO, *engine.route_set.names]
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": 0, "owned_by": "semroute"} for n in names],
    }
