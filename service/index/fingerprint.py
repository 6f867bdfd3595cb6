"""The index fingerprint: a hash of everything the index is built from."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from service.config.routes import RouteSet
from service.encoding import e5
from service.encoding.encoder import EMBEDDING_SCHEME
from service.index import quality

# The wide classifier learns from at most this many utterances per route (evenly spread over
# the route's list) plus every calibration row: the wide encoder costs about 15-20 ms of CPU a
# text at build. It only ever decides, or seconds, prompts not in English, and the routes'
# rows in other languages are the ones it needs. At 200 (set when a route held at most 340
# rows) it saw about 1,800 of the default routes' 5,077; all of them lifted the non-English
# chat and math sets the routes never saw (MT-Bench's seven editions 0.722 -> 0.735, MGSM
# 0.922 -> 0.935, BELLE 0.765 -> 0.771, AlignBench 0.718 -> 0.724) and left English alone, for
# about 70 s more of a cold build. A route of thousands of utterances still costs the wide
# encoder 1,000 of them. Part of the fingerprint, since it changes the wide classifier.
WIDE_PER_ROUTE = 1000


def fingerprint(route_set: RouteSet, embedding_model: str, wide_model: str | None = None) -> str:
    """Hash of everything the index is built from.

    That is route names, utterances, calibration prompts, the calibrated acceptance rate,
    the classifier's regularisation, the complexity examples, the outcome data (and the
    quality estimator's scheme) and the embedding model. Models, fallbacks, thresholds and
    descriptions are left out on purpose: changing them takes effect at the next start
    without re-embedding anything.
    """
    canonical: dict[str, Any] = {
        "embedding_model": embedding_model,
        "embedding_scheme": EMBEDDING_SCHEME,
        "routes": {route.name: list(route.utterances) for route in route_set.routes},
        "calibration": [list(example) for example in route_set.calibration],
        "accept_rate": route_set.config.accept_rate,
        "classifier_c": route_set.config.classifier_c,
    }
    if wide_model is not None:
        # Only when configured: an index built without a wide encoder keeps its fingerprint.
        # How the wide encoder reads and runs a text enters it too: another token budget,
        # prefix or engine gives other vectors.
        canonical["wide_model"] = [
            wide_model,
            WIDE_PER_ROUTE,
            e5.E5_MAX_TOKENS,
            e5.PREFIX_QUERY,
            e5.WIDE_ENGINE,
        ]
        wide_only = {r.name: list(r.wide_utterances) for r in route_set.routes if r.wide_utterances}
        if wide_only:  # only when some route has them: other indexes keep their fingerprint
            canonical["wide_utterances"] = wide_only
    if route_set.complexity:
        # Only when present: an index built without complexity examples stays current.
        canonical["complexity"] = [list(example) for example in route_set.complexity]
    if route_set.outcomes:
        # Likewise: outcome data enters the fingerprint only when there is some.
        canonical["outcomes"] = [
            [row.prompt, sorted(row.outcomes.items())] for row in route_set.outcomes
        ]
        # And how they are learned: an estimator fitted another way must be rebuilt.
        canonical["quality_scheme"] = quality.SCHEME
    payload = json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()
