"""Offline measures of the dynamic parts of routing: the complexity model and conversations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from service.config.complexity_examples import read_labelled
from service.config.jsonl import json_lines
from service.index.complexity import ComplexityModel, Embeds
from service.routing.types import Decision, RouteRequest


@dataclass(frozen=True)
class Evaluation:
    examples: int
    accuracy: float
    auroc: float


def evaluate(model: ComplexityModel, path: Path, encoder: Embeds) -> Evaluation:
    """Accuracy (at p = 0.5) and AUROC of ``model`` on a labelled file it was not trained on."""
    from sklearn.metrics import roc_auc_score

    texts, labels = read_labelled(path)
    probabilities = model.hard_probability(encoder.encode(texts), texts)
    truth = np.asarray(labels)
    return Evaluation(
        examples=len(texts),
        accuracy=float(((probabilities >= 0.5).astype(int) == truth).mean()),
        auroc=float(roc_auc_score(truth, probabilities)),
    )


class Decides(Protocol):
    async def decide(self, request: RouteRequest) -> Decision: ...


@dataclass(frozen=True)
class MultiTurnScore:
    """Accuracy of one routing mode on a labelled multi-turn set."""

    mode: str
    turns: int
    accuracy: float
    follow_ups: int
    follow_up_accuracy: float  # turns after the first of their conversation


MODES = ("latest turn only", "context vector", "context vector + sticky conversation")


def read_conversations(path: Path) -> list[list[tuple[str, str]]]:
    """``{"id", "turns": [{"text", "label"}, ...]}`` lines -> [(text, route), ...] each."""
    conversations = []
    for number, row, problem in json_lines(path.read_text(encoding="utf-8").splitlines()):
        if problem is not None:
            raise ValueError(f"{path}:{number}: {problem}")
        conversations.append([(turn["text"], turn["label"]) for turn in row["turns"]])
    return conversations


async def evaluate_multiturn(
    router: Decides, conversations: Sequence[Sequence[tuple[str, str]]]
) -> list[MultiTurnScore]:
    """Route every user turn three ways (see ``MODES``) and score each against its label.

    Assistant turns are placeholders: the router ignores assistant text.
    """
    scores = []
    for mode in MODES:
        right = follow_right = follow_total = total = 0
        for number, conversation in enumerate(conversations):
            messages: list[dict[str, str]] = []
            conversation_id = f"eval-{mode}-{number}" if "sticky" in mode else None
            for position, (text, label) in enumerate(conversation):
                messages.append({"role": "user", "content": text})
                if mode == MODES[0]:
                    request = RouteRequest(prompt=text, tiebreak=False)
                else:
                    request = RouteRequest.model_validate(
                        {
                            "messages": messages,
                            "tiebreak": False,
                            "conversation_id": conversation_id,
                        }
                    )
                hit = (await router.decide(request)).route == label
                messages.append({"role": "assistant", "content": "(answer)"})
                total += 1
                right += hit
                if position:
                    follow_total += 1
                    follow_right += hit
        scores.append(
            MultiTurnScore(
                mode, total, right / total, follow_total, follow_right / max(follow_total, 1)
            )
        )
    return scores
