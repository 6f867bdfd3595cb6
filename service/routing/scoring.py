"""Pure scoring: nearest neighbours in, ranked per-route scores and an accept/abstain verdict out.

Nothing here knows about FAISS, YAML or HTTP; every function takes and returns plain arrays
and numbers, so the decision maths can be tested with hand-made inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class Abstain(StrEnum):
    """Why the semantic stage did not accept its top route."""

    NO_CANDIDATE = "no_candidate"
    BELOW_THRESHOLD = "below_threshold"
    CLOSE_MARGIN = "close_margin"
    # The classifier's "no route" class won: gibberish, keyboard mash, a task no route
    # serves. It goes to the default route whatever ``undecided`` says.
    OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class Ranked:
    """Per-route scores, best first; ``positions`` index the route list the caller holds."""

    positions: np.ndarray
    scores: np.ndarray

    @property
    def margin(self) -> float:
        """Gap between the best and the runner-up; a lone candidate has the full gap to -1."""
        if len(self.scores) == 0:
            return 0.0
        runner_up = float(self.scores[1]) if len(self.scores) > 1 else -1.0
        return float(self.scores[0]) - runner_up


def neighbour_route_scores(
    similarities: np.ndarray, labels: np.ndarray, n_routes: int, top_m: int = 3
) -> np.ndarray:
    """Score each route by the mean of its ``top_m`` best neighbour similarities.

    Neighbours arrive sorted by similarity, best first. A route seen fewer than ``top_m``
    times among them is averaged over what was seen, so one very close utterance counts,
    while agreement of several close utterances is what lifts a route above a lucky hit.
    Routes absent from the neighbours score NaN (no evidence, not "similarity zero").
    """
    # Plain floats: a prompt has about ten neighbours, and indexing NumPy arrays one element
    # at a time cost more than the rest of the per-prompt scoring.
    totals = [0.0] * n_routes
    counts = [0] * n_routes
    for similarity, label in zip(similarities.tolist(), labels.tolist(), strict=True):
        if label < 0 or counts[label] >= top_m:
            continue
        totals[label] += similarity
        counts[label] += 1
    return np.array(
        [total / count if count else np.nan for total, count in zip(totals, counts, strict=True)]
    )


def neighbour_probabilities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Neighbour scores (NaN: no evidence) as a distribution over routes.

    A softmax of similarity over ``temperature``; routes without a neighbour get 0.
    """
    seen = ~np.isnan(scores)
    out = np.zeros(len(scores), dtype=np.float64)
    if seen.any():
        shifted = np.exp((scores[seen] - scores[seen].max()) / temperature)
        out[seen] = shifted / shifted.sum()
    return out


def blend(classifier: np.ndarray, neighbours: np.ndarray, weight: float) -> np.ndarray:
    """Mix the classifier's route probabilities with the neighbour vote's.

    The classifier generalises from many examples but its weights for a route of a handful
    of utterances stay small beside routes with hundreds; the nearest utterances do not care
    how large a route is. A prompt right next to a new route's examples therefore wins on the
    neighbour vote even where the classifier has not learnt the route yet.
    """
    return (1.0 - weight) * classifier + weight * neighbours


def rank(scores: np.ndarray) -> Ranked:
    """Routes with evidence, best score first (ties keep route order)."""
    positions = np.flatnonzero(~np.isnan(scores))
    order = np.argsort(-scores[positions], kind="stable")
    return Ranked(positions=positions[order], scores=scores[positions][order])


def verdict(
    ranked: Ranked, threshold: float, min_margin: float, evidence: float | None = None
) -> Abstain | None:
    """None when the top route is accepted, else the reason to look further.

    ``evidence`` is what the threshold applies to: the top score itself for neighbour
    scoring, the calibrated in-scope score for the classifier.
    """
    if len(ranked.scores) == 0:
        return Abstain.NO_CANDIDATE
    if (float(ranked.scores[0]) if evidence is None else evidence) < threshold:
        return Abstain.BELOW_THRESHOLD
    if ranked.margin < min_margin:
        return Abstain.CLOSE_MARGIN
    return None
