"""Routed completions: call the chosen model through litellm, fall back, review, account.

One attempt per model, in the order model -> route fallbacks -> router-wide escalation model,
all inside one overall deadline. A model in cooldown (it failed repeatedly of late; see
``service.state.cooldown``) is skipped, and its skip is recorded like any attempt. Provider errors are litellm's own exception types (its
mapping of every provider's failures); this module only decides what to try next and keeps
the record of every attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import litellm

from service.completion.answers import problem_with
from service.completion.providers import Endpoints
from service.config.dedup import unique
from service.config.routes import CompletionPolicy
from service.state.cooldown import counts_toward_cooldown
from service.state.local import LocalState
from service.state.store import StateStore

Outcome = Literal["ok", "error", "timeout", "bad_answer", "skipped"]
Role = Literal["primary", "fallback", "escalation", "review"]
Call = Callable[..., Awaitable[Any]]

# litellm prints provider help banners to stdout on every failure; failures are expected
# here (that is what the fallback chain is for) and are reported in ``attempts`` instead.
litellm.suppress_debug_info = True

MAX_ERROR_CHARS = 300
REVIEW_INSTRUCTION = (
    "You review another assistant's draft answer. Correct any mistakes and improve it so that "
    "it fully and accurately answers the user's request. Reply with the improved answer only, "
    "without commentary about the review."
)


@dataclass
class Attempt:
    """One call to one model, as reported to the client in ``attempts``."""

    model: str
    role: Role
    outcome: Outcome
    latency_ms: float
    error_type: str | None = None
    message: str | None = None
    cost_usd: float | None = None
    usage: dict[str, int] | None = None


@dataclass
class ChainResult:
    attempts: list[Attempt]
    response: Any | None = None
    model: str | None = None
    deadline_exceeded: bool = False
    reviewed: bool | None = None
    review_note: str | None = None

    @property
    def ok(self) -> bool:
        return self.response is not None


@dataclass(frozen=True)
class CompletionJob:
    """Everything one completion needs besides the providers: what to send, to whom, and
    how long the chain may take (``budget_s``: what the request's deadline has left once the
    route is decided; None gives the policy's whole ``deadline_s``)."""

    messages: list[dict[str, Any]]
    models: Sequence[tuple[str, Role]]
    params: dict[str, Any] = field(default_factory=dict)
    reviewer: str | None = None
    budget_s: float | None = None


def model_chain(
    model: str, fallbacks: Sequence[str], escalation: str | None
) -> list[tuple[str, Role]]:
    """The models to try, in order, each once."""
    chain: list[tuple[str, Role]] = [(model, "primary")]
    chain += [(m, "fallback") for m in fallbacks]
    if escalation:
        chain.append((escalation, "escalation"))
    return unique(chain, key=lambda entry: entry[0])


def _cost(response: Any) -> float | None:
    """litellm's price for the call; None when the model has no price in the cost map."""
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # litellm raises when the model is not in its cost map
        return None


def _usage(response: Any) -> dict[str, int] | None:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {key: int(getattr(usage, key, 0) or 0) for key in keys}


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:MAX_ERROR_CHARS] + ("…" if len(text) > MAX_ERROR_CHARS else "")


def content_of(response: Any) -> tuple[str | None, str | None, bool]:
    """(text, finish_reason, has_tool_calls) of the first choice of a chat response."""
    try:
        choice = response.choices[0]
    except (AttributeError, IndexError, TypeError):
        return None, None, False
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None)
    tool_calls = bool(getattr(message, "tool_calls", None))
    return content, getattr(choice, "finish_reason", None), tool_calls


class Completer:
    """Runs completion jobs against litellm (or any function with its signature, in tests).

    Failures and cooldowns are counted in ``state``, the app's store, so that they outlive
    a reload and, with Redis, hold on every replica.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        policy: CompletionPolicy,
        call: Call | None = None,
        state: StateStore | None = None,
    ):
        self.endpoints = endpoints
        self.policy = policy
        self.state: StateStore = state or LocalState()
        self._call: Call = call or litellm.acompletion

    async def _failed(
        self,
        model: str,
        error: BaseException,
        record: Callable[..., Attempt],
        awaited: str,
        timeout: float,
    ) -> Attempt:
        """Count a failed call toward the model's cooldown and record it as its attempt."""
        if counts_toward_cooldown(error):
            await self.state.record_failure(model, self.policy.cooldown)
        if isinstance(error, (TimeoutError, litellm.Timeout)):
            return record(
                "timeout", error_type="Timeout", message=f"no {awaited} within {timeout:.3g}s"
            )
        return record("error", error_type=type(error).__name__, message=_short(error))

    async def _cooling(self, job: CompletionJob) -> dict[str, float]:
        if self.policy.cooldown.cooldown_s <= 0:
            return {}
        return await self.state.cooldowns(model for model, _ in job.models)

    def _begin(
        self, model: str, role: Role
    ) -> tuple[str, dict[str, Any], Callable[..., Attempt], Attempt | None]:
        """Resolve ``model`` and start its attempt's clock.

        Returns the model to call, its connection kwargs, a function that records the
        attempt's outcome, and the attempt already recorded as skipped when a key is missing.
        Attempts name the model actually called (it differs from the route's in local mode).
        """
        started = time.perf_counter()
        target, connection = self.endpoints.resolve(model)

        def record(outcome: Outcome, **extra: Any) -> Attempt:
            latency = round((time.perf_counter() - started) * 1000, 3)
            return Attempt(model=target, role=role, outcome=outcome, latency_ms=latency, **extra)

        missing = self.endpoints.missing_keys(model)
        skipped = (
            record(
                "skipped",
                error_type="missing_api_key",
                message=f"no API key for {model}: set {' or '.join(missing)}",
            )
            if missing
            else None
        )
        return target, connection, record, skipped

    async def _attempt(
        self,
        model: str,
        role: Role,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        timeout: float,
    ) -> tuple[Attempt, Any | None]:
        target, connection, record, skipped = self._begin(model, role)
        if skipped is not None:
            return skipped, None
        try:
            response = await asyncio.wait_for(
                self._call(
                    model=target,
                    messages=messages,
                    timeout=timeout,
                    num_retries=self.policy.num_retries,
                    **connection,
                    **params,
                ),
                timeout=timeout,
            )
        except Exception as error:  # litellm maps provider failures onto its exception types
            return await self._failed(model, error, record, "answer", timeout), None
        usage, cost = _usage(response), _cost(response)
        content, finish_reason, tool_calls = content_of(response)
        problem = problem_with(
            content,
            finish_reason,
            params.get("response_format"),
            tool_calls,
            self.policy.min_truncated_chars,
        )
        if problem:
            return record(
                "bad_answer", error_type=problem, message=None, cost_usd=cost, usage=usage
            ), None
        return record("ok", cost_usd=cost, usage=usage), response

    async def _first_answer(
        self,
        job: CompletionJob,
        try_model: Callable[[str, Role, float], Awaitable[tuple[Attempt, Any | None]]],
    ) -> tuple[ChainResult, Any | None, float]:
        """Walk the job's models until ``try_model`` returns something; the one chain loop.

        Returns the record so far, what the successful attempt returned (or None), and the
        deadline on the event loop's clock, for whatever step comes next.
        """
        loop = asyncio.get_running_loop()
        budget = self.policy.deadline_s if job.budget_s is None else job.budget_s
        deadline = loop.time() + budget
        result = ChainResult(attempts=[])
        cooling = await self._cooling(job)
        for model, role in job.models:
            if model in cooling:
                result.attempts.append(self._cooling_down(model, role, cooling[model]))
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                result.deadline_exceeded = True
                break
            attempt, answer = await try_model(
                model, role, min(self.policy.attempt_timeout_s, remaining)
            )
            result.attempts.append(attempt)
            if answer is not None:
                result.model = attempt.model
                return result, answer, deadline
            if attempt.outcome == "timeout" and deadline - loop.time() <= 0.01:
                result.deadline_exceeded = True
                break
        return result, None, deadline

    def _cooling_down(self, model: str, role: Role, left_s: float) -> Attempt:
        target, _ = self.endpoints.resolve(model)
        return Attempt(
            model=target,
            role=role,
            outcome="skipped",
            latency_ms=0.0,
            error_type="cooldown",
            message=f"{model} failed repeatedly; cooling down for another {left_s:.3g}s",
        )

    async def run(self, job: CompletionJob) -> ChainResult:
        """Try the job's models in order until one gives a usable answer or time runs out."""
        result, response, deadline = await self._first_answer(
            job,
            lambda model, role, timeout: self._attempt(
                model, role, job.messages, job.params, timeout
            ),
        )
        result.response = response
        if result.ok and job.reviewer:
            await self._review(job, result, deadline - asyncio.get_running_loop().time())
        return result

    async def _review(self, job: CompletionJob, result: ChainResult, remaining: float) -> None:
        """Replace the draft with the reviewer's version; keep the draft if the review fails."""
        assert job.reviewer is not None
        draft, _, _ = content_of(result.response)
        if remaining <= 0:
            result.reviewed, result.review_note = False, "no time left for the review"
            return
        request = next(
            (m.get("content") for m in reversed(job.messages) if m.get("role") == "user"), ""
        )
        messages = [
            {"role": "system", "content": REVIEW_INSTRUCTION},
            {"role": "user", "content": f"Request:\n{request}\n\nDraft answer:\n{draft}"},
        ]
        timeout = min(self.policy.attempt_timeout_s, remaining)
        attempt, response = await self._attempt(
            job.reviewer, "review", messages, job.params, timeout
        )
        result.attempts.append(attempt)
        if response is None:
            result.reviewed = False
            result.review_note = (
                f"review by {job.reviewer} failed ({attempt.error_type}); draft kept"
            )
            return
        result.response, result.model, result.reviewed = response, attempt.model, True

    async def stream(self, job: CompletionJob) -> StreamedAnswer:
        """Like ``run``, but the answering model streams; fallback happens before its first chunk.

        A model has answered once a chunk with text (not only white space) or a tool call
        arrives. An error, a timeout or a stream that ends before that moves on to the next
        model; after it, the answer is committed to that model. Checks that need the whole
        answer (truncation, invalid JSON) and the reviewer do not apply to streams.
        """
        result, opened, deadline = await self._first_answer(
            job,
            lambda model, role, timeout: self._open_stream(
                model, role, job.messages, job.params, timeout
            ),
        )
        if opened is None:
            return StreamedAnswer(result)
        stream, opening, started = opened
        return StreamedAnswer(result, stream, opening, job.messages, deadline, started)

    async def _open_stream(
        self,
        model: str,
        role: Role,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        timeout: float,
    ) -> tuple[Attempt, tuple[Any, list[Any], float] | None]:
        """Start a stream and read it up to its first substantial chunk."""
        started = time.perf_counter()
        target, connection, record, skipped = self._begin(model, role)
        if skipped is not None:
            return skipped, None
        opening: list[Any] = []
        try:
            async with asyncio.timeout(timeout):
                stream = await self._call(
                    model=target,
                    messages=messages,
                    stream=True,
                    timeout=timeout,
                    num_retries=self.policy.num_retries,
                    **connection,
                    **params,
                )
                while not (opening and _substantial(opening[-1])):
                    try:
                        opening.append(await anext(stream))
                    except StopAsyncIteration:
                        break
        except Exception as error:  # litellm maps provider failures onto its exception types
            return await self._failed(model, error, record, "first chunk", timeout), None
        if not (opening and _substantial(opening[-1])):
            rebuilt = _rebuild(opening, messages)
            return record(
                "bad_answer",
                error_type="empty",
                cost_usd=_cost(rebuilt) if rebuilt is not None else None,
                usage=_usage(rebuilt),
            ), None
        return record("ok"), (stream, opening, started)


def _substantial(chunk: Any) -> bool:
    """True for a chunk that carries text besides white space, or a tool call."""
    try:
        delta = chunk.choices[0].delta
    except (AttributeError, IndexError, TypeError):
        return False
    text = getattr(delta, "content", None) or ""
    return bool(text.strip() or getattr(delta, "tool_calls", None))


def _rebuild(chunks: list[Any], messages: list[dict[str, Any]]) -> Any | None:
    """A streamed answer as one response, rebuilt by litellm (None if it cannot be).

    Without a usage chunk from the provider, litellm counts the tokens itself.
    """
    if not chunks:
        return None
    try:
        return litellm.stream_chunk_builder(chunks, messages=messages)
    except Exception:  # a malformed chunk must not turn a delivered answer into an error
        return None


class StreamedAnswer:
    """The outcome of ``Completer.stream``: the attempts so far and, if a model answered,
    its chunks (the ones read while choosing it, then the rest of the stream).

    The streaming attempt is ``result.attempts[-1]``; iterating ``chunks()`` to its end
    completes it with latency, usage and cost, or with the failure that cut the stream
    (``failure`` then says what to tell the client). ``result.response`` is the answer
    rebuilt from its chunks once the stream ended cleanly.
    """

    def __init__(
        self,
        result: ChainResult,
        stream: Any | None = None,
        opening: Sequence[Any] = (),
        messages: Sequence[dict[str, Any]] = (),
        deadline: float = 0.0,
        started: float = 0.0,
    ):
        self.result = result
        self.failure: str | None = None
        self._stream = stream
        self._opening = list(opening)
        self._messages = list(messages)
        self._deadline = deadline
        self._started = started

    @property
    def ok(self) -> bool:
        """A model started answering (the stream may still fail later)."""
        return self._stream is not None

    async def chunks(self) -> AsyncIterator[Any]:
        if self._stream is None:
            return
        attempt = self.result.attempts[-1]
        received = list(self._opening)
        loop = asyncio.get_running_loop()
        try:
            for chunk in self._opening:
                yield chunk
            while True:
                remaining = self._deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                try:
                    chunk = await asyncio.wait_for(anext(self._stream), timeout=remaining)
                except StopAsyncIteration:
                    break
                received.append(chunk)
                yield chunk
        except (TimeoutError, litellm.Timeout):
            attempt.outcome, attempt.error_type = "timeout", "Timeout"
            attempt.message = self.failure = "the stream was cut off at the deadline"
        except Exception as error:
            attempt.outcome, attempt.error_type = "error", type(error).__name__
            attempt.message = _short(error)
            self.failure = f"{attempt.model} failed mid-stream: {attempt.message}"
        finally:
            attempt.latency_ms = round((time.perf_counter() - self._started) * 1000, 3)
            rebuilt = _rebuild(received, self._messages)
            if rebuilt is not None:
                attempt.usage, attempt.cost_usd = _usage(rebuilt), _cost(rebuilt)
            if self.failure is None:
                self.result.response = rebuilt if rebuilt is not None else received
