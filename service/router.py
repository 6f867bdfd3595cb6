"""The decision pipeline: override -> semantic match -> accept, tie-break or default.

CPU work (embedding, search, scoring) runs on one worker thread so the event loop keeps
serving while a prompt is encoded; everything else here is cheap bookkeeping.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service import scoring
from service.classifier import softmax
from service.index import LoadedIndex
from service.routes import Route, RouteSet
from service.schemas import Candidate, Decision, Match, Method, RouteRequest

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
    confidence: float | None = None


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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semroute-encode")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def semantic(self, text: str) -> SemanticResult:
        """Embed, search and score one prompt (CPU-bound; called off the event loop)."""
        return self.score_vectors(self.encoder.encode_one(text)[None, :])[0]

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
                    ranked, similarities[row], row_ids, abstain, evidence, row_confidence
                )
            )
        return results

    async def decide(self, request: RouteRequest) -> Decision:
        started = time.perf_counter()
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
            return self._decision(route, "override", None, None, started, request.explain)

        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, self.semantic, text)
        ranked, reason = result.ranked, result.abstain
        top = self._routes[int(ranked.positions[0])] if len(ranked.positions) else None
        if top is not None and reason is None:
            return self._decision(top, "semantic", result, None, started, request.explain)
        chosen: str | None = None
        if self.tiebreaker is not None and request.tiebreak and len(ranked.positions):
            shortlist = [self._routes[int(p)] for p in ranked.positions]
            chosen = await self.tiebreaker.choose(text, [r for r in shortlist if r is not None])
            route = self.route_set.get(chosen) if chosen else None
            if route is not None:
                return self._decision(route, "llm", result, reason, started, request.explain)
        undecided = chosen != NO_ROUTE
        if top is not None and undecided and self.route_set.config.undecided == "top":
            note = (
                "no tie-breaker"
                if self.tiebreaker is None or not request.tiebreak
                else ("tie-breaker failed")
            )
            return self._decision(
                top, "semantic", result, reason, started, request.explain, note=note
            )
        return self._decision(
            self.route_set.default, "default", result, reason, started, request.explain
        )

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
            else (reason.value if reason else None),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            decision_id=uuid.uuid4().hex,
            index_fingerprint=self.index.fingerprint,
        )
