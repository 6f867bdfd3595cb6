"""The semantic stage: embed a prompt, search the index, score the routes, judge the top one.

Scoring is either the classifier fitted at index build (``scoring: classifier``), its route
probabilities blended with the nearest utterances' vote (``knn_weight``), or that vote alone
(``knn``); both end in ``scoring.verdict``, which says whether the top route may be accepted
or why not, unless the classifier's "no route" class wins (``Abstain.OUT_OF_SCOPE``).

A prompt mostly written in a script the embedding model does not cover
(``encoding.scripts.reading``) is also embedded by the wide encoder, when one is configured,
and the classifier fitted on that encoder's vectors decides its route; the rest of its result
(neighbours, vector) stays the primary encoder's. A prompt in a Latin-script language the
embedding model lacks is read by both: their classifiers' route probabilities are averaged. A
prompt in another language the embedding model knows is decided by the primary classifier,
and averaged with the wide one when that decision is unsure (a second opinion).

All CPU work (embedding, search, scoring) runs on one worker thread so the event loop keeps
serving while a prompt is encoded, and concurrent single prompts share one encoder call
(``batching.MicroBatcher``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import faiss
import numpy as np

from service.config.routes import Route, RouteSet
from service.encoding.batching import DEFAULT_LIMITS, BatchLimits, MicroBatcher
from service.encoding.scripts import Reading, reading
from service.index.classifier import decision_confidence, softmax
from service.index.store import LoadedIndex
from service.routing import context, scoring
from service.routing.gibberish import Spelling

# Sharpness of the neighbour vote: cosine gaps of a few hundredths decide it.
KNN_TEMPERATURE = 0.05
# The primary classifier's share of the route probabilities of a prompt both encoders read.
# On the shared pool's Romanian, Hungarian, Albanian, Croatian and Lithuanian prompts (220,
# each source held out) the primary alone routed 0.66, the wide one alone 0.81, both 0.91.
BOTH_PRIMARY_SHARE = 0.5
# A prompt in another language than English that the primary encoder knows asks the wide
# encoder for a second opinion when its decision's confidence is below this. On the default
# routes, asking every such prompt and asking those below 0.9 routed MT-Bench's German,
# Spanish, Japanese and Korean editions (320 prompts) and MGSM's covered languages (280) alike,
# and 0.9 asks 46 % and 31 % of them; 0.8 asks 33 % and 16 % and loses two MGSM problems.
SECOND_OPINION_BELOW = 0.9


class Embedder(Protocol):
    """What the router needs of an encoder (``encoding.encoder.BaseEncoder`` implements it)."""

    dimension: int

    def encode_one(self, text: str) -> np.ndarray: ...

    def encode_cached(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode(
        self, texts: list[str], batch_size: int = ..., progress: bool = ...
    ) -> np.ndarray: ...


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


class SemanticStage:
    """Scores prompts against one route set and the index built from it."""

    def __init__(
        self,
        route_set: RouteSet,
        index: LoadedIndex,
        encoder: Embedder,
        *,
        top_k: int = 10,
        batching: BatchLimits = DEFAULT_LIMITS,
        wide_encoder: Embedder | None = None,
    ):
        missing = set(index.route_names) - set(route_set.names)
        if missing:
            raise ValueError(f"the index holds routes that are not defined: {sorted(missing)}")
        self.route_set = route_set
        self.index = index
        self.encoder = encoder
        self.top_k = top_k
        # The wide path is on only when the index holds the classifier of its vectors.
        self.wide_encoder = wide_encoder if index.wide is not None else None
        # The routes in the index's order: a ranked position is an index into this.
        self.routes: list[Route | None] = [route_set.get(name) for name in index.route_names]
        # Keyboard mash told by its spelling, against the letters of the routes' utterances.
        self.spelling = Spelling.fit(u for route in route_set.routes for u in route.utterances)
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="semroute-encode", initializer=single_threaded_math
        )
        # The wide encoder's passes, beside the primary encoder's on the other core.
        self._wide_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="semroute-wide", initializer=single_threaded_math
        )
        # Concurrent single-prompt decisions share one encoder call (service/encoding/batching.py).
        self.batcher: MicroBatcher[str, SemanticResult] = MicroBatcher(
            self.score_batch, self._executor, batching.max_batch, batching.max_wait_ms
        )

    def close(self) -> None:
        self.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._wide_executor.shutdown(wait=False, cancel_futures=True)

    async def match(self, text: str, turns: list[str]) -> SemanticResult:
        """The result for a request, computed off the event loop.

        A conversation's turns are scored together; a single prompt joins the micro-batch.
        """
        if len(turns) > 1:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self.score_turns, turns)
        return await self.batcher.submit(text)

    async def embed(self, text: str) -> np.ndarray:
        """The prompt's embedding, computed off the event loop on the encoder thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.encoder.encode_one, text)

    def score_turns(self, turns: list[str]) -> SemanticResult:
        """Semantic result of the latest turn with earlier user turns as weaker evidence."""
        turns = context.context_turns(turns)
        if len(turns) == 1:
            return self.score_prompt(turns[0])
        vectors = np.stack([self.encoder.encode_one(turn) for turn in turns])
        wide = None
        mash = self.spelling.is_mash(turns[-1])
        how = self.reading(turns[-1], mash)
        if self.wide_encoder is not None and how is not Reading.PRIMARY:
            wide_turns = np.stack([self.wide_encoder.encode_one(turn) for turn in turns])
            wide = context.combine(wide_turns)[None, :]
        result = self.score_vectors(
            context.combine(vectors)[None, :], wide, [turns[-1]], _primary_share(how)
        )[0]
        # Routed by the mixed vector, but the complexity is that of the latest turn alone.
        return judge_spelling(dataclasses.replace(result, vector=vectors[-1]), mash)

    def score_prompt(self, text: str) -> SemanticResult:
        """Embed, search and score one prompt (CPU-bound; called off the event loop)."""
        return self.score_texts([text], lambda texts: self.encoder.encode_one(texts[0])[None, :])[0]

    def score_batch(self, texts: list[str]) -> list[SemanticResult]:
        """Decisions for the prompts of one micro-batch: one encoder call, cached prompts skipped."""
        return self.score_texts(texts, self.encoder.encode_cached)

    def score_many(self, texts: list[str], batch_size: int = 128) -> list[SemanticResult]:
        """The same decisions for many prompts at once (evaluation, benchmarks)."""
        return self.score_texts(
            texts, lambda rows: self.encoder.encode(list(rows), batch_size=batch_size)
        )

    def reading(self, text: str, mash: bool) -> Reading:
        """Which encoders route the prompt (``scripts.reading``). A prompt spelt as mash
        (``mash``, from ``spelling.is_mash``) goes out of scope whatever its vectors say, so it
        never pays for the wide encoder: the language identifier puts some of it (16 of 200
        held-key strings) down to a language."""
        if self.wide_encoder is None or mash:
            return Reading.PRIMARY
        return reading(text)

    def score_texts(
        self, texts: Sequence[str], embed: Callable[[Sequence[str]], np.ndarray]
    ) -> list[SemanticResult]:
        """Results of prompts whose primary vectors ``embed`` computes: the prompts the
        primary encoder cannot read are also embedded by the wide encoder, on its own thread
        while ``embed`` runs (one prompt's latency is then the slower encoder's, not their
        sum), and scored by its classifier; a prompt in another language the primary encoder
        knows is embedded by the wide encoder afterwards, and only when its decision is unsure
        (``SECOND_OPINION_BELOW``); every result passes the spelling check."""
        results: dict[int, SemanticResult] = {}
        mash = [self.spelling.is_mash(text) for text in texts]
        readings = [self.reading(text, spelt) for text, spelt in zip(texts, mash, strict=True)]
        wide_rows = [row for row, read in enumerate(readings) if read in _READ_AT_ONCE]
        pending = None
        if wide_rows and self.wide_encoder is not None:
            # One wide-encoder call for every prompt it reads, then scored by reading.
            pending = self._wide_executor.submit(
                self.wide_encoder.encode_cached, [texts[row] for row in wide_rows]
            )
        vectors = embed(texts)
        if pending is not None:
            wide = pending.result()
            for how in _READ_AT_ONCE:
                picked = [i for i, row in enumerate(wide_rows) if readings[row] is how]
                if not picked:
                    continue
                rows = [wide_rows[i] for i in picked]
                scored = self.score_vectors(
                    vectors[rows],
                    wide[picked],
                    [texts[row] for row in rows],
                    _primary_share(how),
                )
                results.update(zip(rows, scored, strict=True))
        narrow_rows = [row for row in range(len(texts)) if row not in results]
        if narrow_rows:
            narrow_texts = [texts[row] for row in narrow_rows]
            scored = self.score_vectors(vectors[narrow_rows], texts=narrow_texts)
            results.update(zip(narrow_rows, scored, strict=True))
        unsure = [
            row for row in narrow_rows if readings[row] is Reading.CHECKED and _unsure(results[row])
        ]
        if unsure and self.wide_encoder is not None:
            unsure_texts = [texts[row] for row in unsure]
            second = self.score_vectors(
                vectors[unsure],
                self.wide_encoder.encode_cached(unsure_texts),
                unsure_texts,
                _primary_share(Reading.CHECKED),
            )
            results.update(zip(unsure, second, strict=True))
        return [judge_spelling(results[row], mash[row]) for row in range(len(texts))]

    def score_vectors(
        self,
        vectors: np.ndarray,
        wide: np.ndarray | None = None,
        texts: Sequence[str] | None = None,
        primary_share: float = 0.0,
    ) -> list[SemanticResult]:
        """Results of primary ``vectors``; with ``wide`` (the same prompts' wide-encoder
        vectors), the wide classifier decides the routes instead of the primary one, or
        together with it when ``primary_share`` is above 0 (its share of the probabilities).
        The prompts' ``texts`` add the classifier's lexical model."""
        similarities, ids = self.index.search(vectors, self.top_k)
        classified = self.route_set.config.scoring == "classifier" and self.index.model is not None
        n_routes = len(self.index.route_names)
        knn_weight = self.route_set.config.knn_weight
        model, calibration, class_vectors = self.index.model, self.index.calibration, vectors
        share = 0.0
        if wide is not None and self.index.wide is not None:
            model, calibration, class_vectors = (
                self.index.wide.model,
                self.index.wide.calibration,
                wide,
            )
            # The primary encoder's neighbours of a prompt it cannot read are noise.
            knn_weight = 0.0
            share = primary_share
        if classified:
            assert model is not None and calibration is not None
            logits, features = model.raw_scores(class_vectors, texts)
            probabilities = softmax(logits)
            if share > 0 and self.index.model is not None:
                # Both classifiers were fitted on the same rows: their columns match.
                primary_logits, _ = self.index.model.raw_scores(vectors, texts)
                probabilities = (1 - share) * probabilities + share * softmax(primary_logits)
            # The "none" class (when fitted) says "no route"; the routes share the rest.
            no_route = (
                probabilities[:, n_routes]
                if model.has_none
                else np.zeros(len(vectors), dtype=np.float64)
            )
            route_probabilities = probabilities[:, :n_routes]
            route_probabilities = route_probabilities / np.maximum(
                route_probabilities.sum(axis=1, keepdims=True), 1e-12
            )
            in_scope = calibration.in_scope(features)
            confidence = decision_confidence(
                calibration, in_scope, route_probabilities.max(axis=1), no_route
            )
        results = []
        for row in range(len(vectors)):
            row_ids = ids[row]
            labels = np.where(row_ids >= 0, self.index.labels[np.maximum(row_ids, 0)], -1)
            if classified:
                mixed = route_probabilities[row]
                if knn_weight > 0:
                    neighbours = scoring.neighbour_route_scores(similarities[row], labels, n_routes)
                    mixed = scoring.blend(
                        mixed,
                        scoring.neighbour_probabilities(neighbours, KNN_TEMPERATURE),
                        knn_weight,
                    )
                ranked = scoring.rank(mixed)
                top = int(ranked.positions[0])
                abstain = (
                    scoring.Abstain.OUT_OF_SCOPE
                    if no_route[row] > probabilities[row, top]
                    else scoring.verdict(
                        ranked,
                        threshold=calibration.route_thresholds[top],  # type: ignore[union-attr]
                        min_margin=self.route_set.config.min_margin,
                        evidence=float(in_scope[row]),
                    )
                )
                row_confidence: float | None = float(confidence[row])
                evidence = float(in_scope[row])
            else:
                ranked = scoring.rank(
                    scoring.neighbour_route_scores(similarities[row], labels, n_routes)
                )
                top_route = self.routes[int(ranked.positions[0])] if len(ranked.positions) else None
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


def judge_spelling(result: SemanticResult, mash: bool) -> SemanticResult:
    """Out of scope, with no confidence in any route, when the prompt is spelt as mash.

    The "no route" class catches most junk from its embedding; the spelling check
    (``gibberish.Spelling``) catches what lands near real prompts, such as held keys.
    """
    if not mash:
        return result
    return dataclasses.replace(result, abstain=scoring.Abstain.OUT_OF_SCOPE, confidence=0.0)


# The readings whose prompts the wide encoder embeds while the primary one runs.
_READ_AT_ONCE = (Reading.WIDE, Reading.BOTH)


def _primary_share(how: Reading) -> float:
    """The primary classifier's share of a wide-read prompt's route probabilities."""
    return BOTH_PRIMARY_SHARE if how in (Reading.BOTH, Reading.CHECKED) else 0.0


def _unsure(result: SemanticResult) -> bool:
    """Whether a decision asks for the wide encoder's second opinion (no confidence: always).

    Not when the classifier's "no route" class won: that verdict is final, as it is for the
    tie-breaker. Keyboard mash that the spelling check lets through and the language
    identifier puts down to a language ("be ctfn lsgng yui sipehe ?") had paid a 15 ms wide
    pass for a second "no route"; on the default routes, MT-Bench's editions, MGSM, BELLE,
    AlignBench and WizardLM kept every decision, and 2 of the held-out pool's 4,639 moved
    from a wrong route to the default one (chit-chat prompts in Indonesian and Italian).
    """
    if result.abstain is scoring.Abstain.OUT_OF_SCOPE:
        return False
    return result.confidence is None or result.confidence < SECOND_OPINION_BELOW
