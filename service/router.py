"""The decision pipeline: override -> rules -> semantic match -> accept, tie-break or default.

After the route is known, a conversation may keep its previous route (``context``), and a
route with tiered models picks one of them (``tiers``, ``complexity``; the complexity model
is fitted at index build and loaded with the index).

CPU work (embedding, search, scoring) runs on one worker thread so the event loop keeps
serving while a prompt is encoded; everything else here is cheap bookkeeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import faiss
import numpy as np

from service import complexity, context, scoring
from service.batching import MicroBatcher
from service.classifier import softmax
from service.context import ConversationStore
from service.index import LoadedIndex
from service.routes import Route, RouteSet
from service.rules import RuleSet
from service.schemas import Candidate, Decision, Match, Method, RouteRequest
from service.tiers import LatencyTracker, TierRequest, choose_model, litellm_cost_per_1k

MAX_CANDIDATES = 5


class Embedder(Protocol):
    def encode_one(self, text: str) -> np.ndarray: ...

    def encode(
        self, texts: list[str], batch_size: int = ..., progress: bool = ...
    ) -> np.ndarray: ...


NO_ROUTE = "none"


class Tiebreaker(Protocol):
    """Settles a close or weak semantic match.

    Returns a candidate's name, NO_ROUTE when it judged that none fits, or None when it
    could not decide (error, timeout, missing key, unusable answer).
    """

    async def choose(self, text: str, candidates: Sequence[Route]) -> str | None: ...


class UnknownRouteError(LookupError):
    """The request forced a route that does not exist."""


class PromptTooLargeError(ValueError):
    """The prompt exceeds the configured size limit."""


@dataclass(frozen=True)
class SemanticResult:
    """The semantic stage's view of one prompt: ranked routes and whether to accept the top."""

    ranked: scoring.Ranked
    similarities: np.ndarray
    neighbour_ids: np.ndarray
    abstain: scoring.Abstain | None
    evidence: float  # what the acceptance threshold was compared with
    # The prompt's embedding (the latest turn's, for a conversation), reused by the
    # complexity estimate so a tiered route does not encode the prompt twice.
    vector: np.ndarray
    confidence: float | None = None


def single_threaded_math() -> None:
    """Keep BLAS and OpenMP (NumPy's and FAISS's) on the calling thread.

    The encoder's ONNX Runtime threads own the cores; the classifier's and the search's small
    products gain nothing from more threads, and idle BLAS/OpenMP workers spinning beside
    the encoder slowed a 4-prompt batch's scoring from 0.4 ms to 7.6 ms and its encoding by
    half. OpenMP settings are per thread, so this runs on the encoder thread itself.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    faiss.omp_set_num_threads(1)


class Router:
    """Turns a request into a Decision using one route set and the index built from it."""

    def __init__(
        self,
        route_set: RouteSet,
        index: LoadedIndex,
        encoder: Embedder,
        top_k: int = 10,
        max_prompt_chars: int = 100_000,
        tiebreaker: Tiebreaker | None = None,
        latency: LatencyTracker | None = None,
        conversations: ConversationStore | None = None,
        batch_max: int = 32,
        batch_wait_ms: float = 2.0,
    ):
        missing = set(index.route_names) - set(route_set.names)
        if missing:
            raise ValueError(f"the index holds routes that are not defined: {sorted(missing)}")
        self.route_set = route_set
        self.index = index
        self.encoder = encoder
        self.top_k = top_k
        self.max_prompt_chars = max_prompt_chars
        self.tiebreaker = tiebreaker
        self._routes = [route_set.get(name) for name in index.route_names]
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="semroute-encode", initializer=single_threaded_math
        )
        # Concurrent single-prompt decisions share one encoder call (service/batching.py).
        self.batcher: MicroBatcher[str, SemanticResult] = MicroBatcher(
            self.semantic_batch, self._executor, max_batch=batch_max, max_wait_ms=batch_wait_ms
        )
        self.rules = RuleSet(route_set.config.rules)
        # Fed by the completion path (observe); read when a request sets max_latency_ms.
        self.latency = latency or LatencyTracker()
        self.conversations = conversations or ConversationStore(
            route_set.config.conversation_cache_size
        )
        self._costs = {
            entry.model: entry.cost_per_1k_tokens
            if entry.cost_per_1k_tokens is not None
            else litellm_cost_per_1k(entry.model)
            for route in route_set.routes
            for entry in route.models
        }
        # Without tiered routes there is nothing to choose between, so no estimate is made.
        tiered = any(len(route.models) > 1 for route in route_set.routes)
        self._complexity = index.complexity if tiered else None

    def close(self) -> None:
        self.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def semantic_context(self, turns: list[str]) -> SemanticResult:
        """Semantic result of the latest turn with earlier user turns as weaker evidence."""
        turns = context.context_turns(turns)
        if len(turns) == 1:
            return self.semantic(turns[0])
        vectors = np.stack([self.encoder.encode_one(turn) for turn in turns])
        result = self.score_vectors(context.combine(vectors)[None, :])[0]
        # Routed by the mixed vector, but the complexity is that of the latest turn alone.
        return dataclasses.replace(result, vector=vectors[-1])

    def semantic(self, text: str) -> SemanticResult:
        """Embed, search and score one prompt (CPU-bound; called off the event loop)."""
        return self.score_vectors(self.encoder.encode_one(text)[None, :])[0]

    def semantic_batch(self, texts: list[str]) -> list[SemanticResult]:
        """Decisions for the prompts of one micro-batch: one encoder call, cached prompts skipped."""
        encode_cached = getattr(self.encoder, "encode_cached", None)
        if encode_cached is not None:
            vectors = encode_cached(texts)
        else:  # an Embedder without a batch cache (test doubles)
            vectors = np.stack([self.encoder.encode_one(text) for text in texts])
        return self.score_vectors(vectors)

    def semantic_many(self, texts: list[str], batch_size: int = 128) -> list[SemanticResult]:
        """The same decisions for many prompts at once (evaluation, benchmarks)."""
        return self.score_vectors(self.encoder.encode(texts, batch_size=batch_size))

    def score_vectors(self, vectors: np.ndarray) -> list[SemanticResult]:
        similarities, ids = self.index.search(vectors, self.top_k)
        classified = self.route_set.config.scoring == "classifier" and self.index.model is not None
        if classified:
            assert self.index.model is not None and self.index.calibration is not None
            logits, features = self.index.model.raw_scores(vectors)
            probabilities = softmax(logits)
            in_scope = self.index.calibration.in_scope(features)
            confidence = self.index.calibration.confidence(in_scope)
        results = []
        for row in range(len(vectors)):
            row_ids = ids[row]
            if classified:
                ranked = scoring.rank(probabilities[row])
                top = int(ranked.positions[0])
                abstain = scoring.verdict(
                    ranked,
                    threshold=self.index.calibration.route_thresholds[top],  # type: ignore[union-attr]
                    min_margin=self.route_set.config.min_margin,
                    evidence=float(in_scope[row]),
                )
                row_confidence: float | None = float(confidence[row])
                evidence = float(in_scope[row])
            else:
                labels = np.where(row_ids >= 0, self.index.labels[np.maximum(row_ids, 0)], -1)
                ranked = scoring.rank(
                    scoring.neighbour_route_scores(
                        similarities[row], labels, len(self.index.route_names)
                    )
                )
                top_route = (
                    self._routes[int(ranked.positions[0])] if len(ranked.positions) else None
                )
                abstain = scoring.verdict(
                    ranked,
                    threshold=self.route_set.threshold(top_route.name) if top_route else 0.0,
                    min_margin=self.route_set.config.min_margin,
                )
                row_confidence = None
                evidence = float(ranked.scores[0]) if len(ranked.scores) else -1.0
            results.append(
                SemanticResult(
                    ranked=ranked,
                    similarities=similarities[row],
                    neighbour_ids=row_ids,
                    abstain=abstain,
                    evidence=evidence,
                    vector=vectors[row],
                    confidence=row_confidence,
                )
            )
        return results

    async def decide(self, request: RouteRequest) -> Decision:
        """The full pipeline: route (see ``_route``), conversation stickiness, then the model."""
        started = time.perf_counter()
        decision, result = await self._route(request, started)
        if request.conversation_id is not None:
            decision = self._stick(request.conversation_id, decision)
            self.conversations.set(request.conversation_id, decision.route)
        decision = await self._pick_model(
            request, decision, None if result is None else result.vector
        )
        return decision.model_copy(
            update={"latency_ms": round((time.perf_counter() - started) * 1000, 3)}
        )

    async def _route(
        self, request: RouteRequest, started: float
    ) -> tuple[Decision, SemanticResult | None]:
        """The route, and the semantic stage's result when that stage ran."""
        text = request.routable_text()
        if len(text) > self.max_prompt_chars:
            raise PromptTooLargeError(
                f"the prompt has {len(text)} characters; the limit is {self.max_prompt_chars}"
            )
        if request.route is not None:
            route = self.route_set.get(request.route)
            if route is None:
                raise UnknownRouteError(
                    f"unknown route '{request.route}'; known routes: "
                    f"{', '.join(self.route_set.names)}"
                )
            return self._decision(route, "override", None, None, started, request.explain), None
        matched = self.rules.match(text, request.metadata) if self.rules else None
        if matched is not None:
            route = self.route_set.get(matched.rule.route)
            assert route is not None, "rules are validated against the routes at load time"
            # A rule's own model, if it names one, is applied by _pick_model.
            decision = self._decision(
                route, "rule", None, None, started, request.explain, note=matched.label
            )
            return decision, None

        loop = asyncio.get_running_loop()
        turns = request.user_turns()
        if len(turns) > 1:
            result = await loop.run_in_executor(self._executor, self.semantic_context, turns)
        else:
            result = await self.batcher.submit(text)
        ranked, reason = result.ranked, result.abstain
        top = self._routes[int(ranked.positions[0])] if len(ranked.positions) else None
        if top is not None and reason is None:
            return self._decision(top, "semantic", result, None, started, request.explain), result
        chosen: str | None = None
        if self.tiebreaker is not None and request.tiebreak and len(ranked.positions):
            shortlist = [self._routes[int(p)] for p in ranked.positions]
            chosen = await self.tiebreaker.choose(text, [r for r in shortlist if r is not None])
            route = self.route_set.get(chosen) if chosen else None
            if route is not None:
                decision = self._decision(route, "llm", result, reason, started, request.explain)
                return decision, result
        undecided = chosen != NO_ROUTE
        if top is not None and undecided and self.route_set.config.undecided == "top":
            note = (
                "no tie-breaker"
                if self.tiebreaker is None or not request.tiebreak
                else ("tie-breaker failed")
            )
            decision = self._decision(
                top, "semantic", result, reason, started, request.explain, note=note
            )
            return decision, result
        decision = self._decision(
            self.route_set.default, "default", result, reason, started, request.explain
        )
        return decision, result

    def _decision(
        self,
        route: Route,
        method: Method,
        result: SemanticResult | None,
        reason: scoring.Abstain | None,
        started: float,
        explain: bool,
        note: str | None = None,
    ) -> Decision:
        candidates: list[Candidate] = []
        matches: list[Match] | None = None
        score = margin = None
        if result is not None:
            ranked = result.ranked
            names = self.index.route_names
            candidates = [
                Candidate(route=names[int(p)], score=round(float(s), 6))
                for p, s in zip(ranked.positions[:MAX_CANDIDATES], ranked.scores, strict=False)
            ]
            score = next((c.score for c in candidates if c.route == route.name), None)
            margin = round(ranked.margin, 6) if len(ranked.scores) else None
            if explain:
                matches = [
                    Match(
                        route=names[int(self.index.labels[i])],
                        utterance=self.index.utterances[i],
                        similarity=round(float(s), 6),
                    )
                    for s, i in zip(result.similarities, result.neighbour_ids, strict=True)
                    if i >= 0
                ]
        return Decision(
            route=route.name,
            model=route.model,
            fallbacks=list(route.fallbacks),
            method=method,
            score=score,
            confidence=round(result.confidence, 6)
            if result is not None and result.confidence is not None and method == "semantic"
            else None,
            margin=margin,
            candidates=candidates,
            matches=matches,
            reason=f"{reason.value}; {note}"
            if reason and note
            else (reason.value if reason else note),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            decision_id=uuid.uuid4().hex,
            index_fingerprint=self.index.fingerprint,
        )

    def _stick(self, conversation_id: str, decision: Decision) -> Decision:
        """Keep the conversation's previous route unless the new turn clearly belongs elsewhere.

        Clearly: an accepted semantic decision whose confidence (classifier scoring) or margin
        (knn scoring) reaches ``stickiness``. Override and rule decisions always stand.
        """
        previous = self.conversations.get(conversation_id)
        if (
            previous is None
            or previous == decision.route
            or decision.method in ("override", "rule")
        ):
            return decision
        if decision.method == "semantic" and decision.reason is None:
            clarity = decision.confidence if decision.confidence is not None else decision.margin
            if clarity is not None and clarity >= self.route_set.config.stickiness:
                return decision
        route = self.route_set.get(previous)
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

    async def _pick_model(
        self, request: RouteRequest, decision: Decision, vector: np.ndarray | None
    ) -> Decision:
        """The model of the chosen route: a rule's model, a tiered pick, or the route's own.

        ``vector`` is the prompt's embedding when the semantic stage computed it; override
        and rule decisions have none, and the prompt is encoded here if the estimate needs it.
        """
        route = self.route_set.get(decision.route)
        if route is None:
            return decision
        chain = [route.model, *(entry.model for entry in route.models), *route.fallbacks]
        if decision.method == "rule":
            matched = self.rules.match(request.routable_text(), request.metadata)
            if matched is not None and matched.rule.model is not None:
                model = matched.rule.model
                return decision.model_copy(
                    update={"model": model, "fallbacks": _unique(chain, without=model)}
                )
        if not route.models:
            return decision
        hard: float | None = None
        wanted = request.quality
        if wanted is None:
            if self._complexity is not None:
                text = request.routable_text()
                if vector is None:
                    loop = asyncio.get_running_loop()
                    vector = await loop.run_in_executor(
                        self._executor, self.encoder.encode_one, text
                    )
                hard = float(self._complexity.hard_probability(vector[None, :], [text])[0])
                wanted = complexity.tier_for(hard)
            else:
                own = [entry.tier for entry in route.models if entry.model == route.model]
                wanted = own[0] if own else "balanced"
        limits = TierRequest(
            request.quality, request.max_cost_per_1k_tokens, request.max_latency_ms
        )
        choice = choose_model(route.models, wanted, limits, self.latency, self._costs)
        reason = decision.reason
        if choice.note.startswith("no model"):
            reason = f"{reason}; {choice.note}" if reason else choice.note
        return decision.model_copy(
            update={
                "model": choice.model,
                "fallbacks": _unique([*choice.fallbacks, *route.fallbacks], without=choice.model),
                "tier": choice.tier,
                "complexity": None if hard is None else round(hard, 4),
                "reason": reason,
            }
        )


def _unique(models: Sequence[str], without: str) -> list[str]:
    """``models`` in order, each once, leaving ``without`` out."""
    return [m for i, m in enumerate(models) if m != without and m not in models[:i]]
