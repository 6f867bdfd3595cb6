"""The decision pipeline: override -> rules -> semantic match -> accept, tie-break or default.

After the route is known, a conversation may keep its previous route (``context.stick``), and
a route with tiered models picks one of them (``model_choice``; the complexity model is
fitted at index build and loaded with the index). The semantic stage (``semantic``) does the
CPU work off the event loop; everything here is cheap bookkeeping.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Protocol

from service.config.routes import Route, RouteSet
from service.config.rules import RuleSet
from service.encoding.batching import DEFAULT_LIMITS, BatchLimits
from service.index.store import LoadedIndex
from service.routing import context, model_choice, scoring
from service.routing.semantic import Embedder, SemanticResult, SemanticStage
from service.routing.types import Candidate, Decision, Match, Method, RouteRequest
from service.state.local import LocalState
from service.state.store import StateStore

MAX_CANDIDATES = 5
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
        state: StateStore | None = None,
        batching: BatchLimits = DEFAULT_LIMITS,
        wide_encoder: Embedder | None = None,
    ):
        self.semantic = SemanticStage(
            route_set, index, encoder, top_k=top_k, batching=batching, wide_encoder=wide_encoder
        )
        self.route_set = route_set
        self.index = index
        self.max_prompt_chars = max_prompt_chars
        self.tiebreaker = tiebreaker
        self.rules = RuleSet(route_set.config.rules)
        # Conversation routes, and latency averages fed by the completion path. The app's
        # store outlives this router (a reload builds a new one on the same store); it is
        # asked only by requests with a conversation_id or a max_latency_ms.
        self.state = state or LocalState(route_set.config.conversation_cache_size)
        self._costs = model_choice.model_costs(route_set.routes)
        # Without tiered routes there is nothing to choose between, so no estimate is made.
        tiered = any(len(route.models) > 1 for route in route_set.routes)
        self._complexity = index.complexity if tiered else None
        self._quality = index.quality if tiered else None

    def close(self) -> None:
        self.semantic.close()

    async def decide(self, request: RouteRequest) -> Decision:
        """The full pipeline: route (see ``_route``), conversation stickiness, then the model."""
        started = time.perf_counter()
        decision, result, rule_model = await self._route(request, started)
        if request.conversation_id is not None:
            previous = await self.state.conversation_route(request.conversation_id)
            decision = context.stick(decision, previous, self.route_set)
            await self.state.keep_conversation_route(request.conversation_id, decision.route)
        decision = await self._pick_model(request, decision, result, rule_model)
        return decision.model_copy(
            update={"latency_ms": round((time.perf_counter() - started) * 1000, 3)}
        )

    async def _route(
        self, request: RouteRequest, started: float
    ) -> tuple[Decision, SemanticResult | None, str | None]:
        """The route, the semantic stage's result when that stage ran, and a rule's model."""
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
            decision = self._decision(route, "override", None, None, started, request.explain)
            return decision, None, None
        matched = self.rules.match(text, request.metadata) if self.rules else None
        if matched is not None:
            route = self.route_set.get(matched.rule.route)
            assert route is not None, "rules are validated against the routes at load time"
            # A rule's own model, if it names one, is applied by _pick_model.
            decision = self._decision(
                route, "rule", None, None, started, request.explain, note=matched.label
            )
            return decision, None, matched.rule.model

        result = await self.semantic.match(text, request.user_turns())
        ranked, reason = result.ranked, result.abstain
        routes = self.semantic.routes
        top = routes[int(ranked.positions[0])] if len(ranked.positions) else None
        if top is not None and reason is None:
            decision = self._decision(top, "semantic", result, None, started, request.explain)
            return decision, result, None
        chosen: str | None = None
        if self.tiebreaker is not None and request.tiebreak and len(ranked.positions):
            shortlist = [routes[int(p)] for p in ranked.positions]
            chosen = await self.tiebreaker.choose(text, [r for r in shortlist if r is not None])
            route = self.route_set.get(chosen) if chosen else None
            if route is not None:
                decision = self._decision(route, "llm", result, reason, started, request.explain)
                return decision, result, None
        # The classifier's own "no route" verdict (junk, unserved tasks) is final, like the
        # tie-breaker's explicit NO_ROUTE: the default route, not a guess.
        undecided = chosen != NO_ROUTE and reason is not scoring.Abstain.OUT_OF_SCOPE
        if top is not None and undecided and self.route_set.config.undecided == "top":
            note = (
                "no tie-breaker"
                if self.tiebreaker is None or not request.tiebreak
                else ("tie-breaker failed")
            )
            decision = self._decision(
                top, "semantic", result, reason, started, request.explain, note=note
            )
            return decision, result, None
        decision = self._decision(
            self.route_set.default, "default", result, reason, started, request.explain
        )
        return decision, result, None

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
            if result is not None
            and result.confidence is not None
            and (method == "semantic" or reason is scoring.Abstain.OUT_OF_SCOPE)
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

    async def _pick_model(
        self,
        request: RouteRequest,
        decision: Decision,
        result: SemanticResult | None,
        rule_model: str | None,
    ) -> Decision:
        """The model of the chosen route: a rule's model, a tiered pick, or the route's own.

        The quality (or else complexity) estimate reuses the semantic stage's embedding;
        override and rule decisions have none, and the prompt is encoded here if needed.
        """
        route = self.route_set.get(decision.route)
        if route is None:
            return decision
        if decision.method == "rule" and rule_model is not None:
            return model_choice.with_rule_model(route, decision, rule_model)
        if not route.models:
            return decision
        text = request.routable_text()
        vector = result.vector if result is not None else None
        expected: dict[str, float] | None = None
        candidates = {entry.model for entry in route.models}
        if self._quality is not None and candidates & set(self._quality.models):
            vector = vector if vector is not None else await self.semantic.embed(text)
            estimates = self._quality.expected_one(vector, text)
            expected = {m: q for m, q in estimates.items() if m in candidates}
        hard: float | None = None
        # Learned quality supersedes the complexity estimate, which only proposes a tier.
        if expected is None and request.quality is None and self._complexity is not None:
            vector = vector if vector is not None else await self.semantic.embed(text)
            hard = float(self._complexity.hard_probability(vector[None, :], [text])[0])
        observed = (
            await self.state.latencies([entry.model for entry in route.models])
            if request.max_latency_ms is not None
            else {}
        )
        return model_choice.with_tiered_model(
            route,
            decision,
            request,
            hard,
            observed,
            self._costs,
            expected,
            self.route_set.config.cost_quality,
        )
