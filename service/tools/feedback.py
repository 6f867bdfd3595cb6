"""From the decision log back to routes: corrected decisions become candidate utterances."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from service.config.dedup import normalise
from service.config.jsonl import json_lines


def report_unlogged(missing: int, what: str) -> None:
    """Say on stderr that ``missing`` records lacked ``what`` the conversion needs, and that
    the decision log keeps prompts only when asked to."""
    if missing:
        print(
            f"{missing} {what}; run the service with SEMROUTE_LOG_PROMPTS=true to collect them",
            file=sys.stderr,
        )


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The log's records; a line cut short by a crash is skipped."""
    with path.open(encoding="utf-8") as source:
        for _, record, _ in json_lines(source):
            if isinstance(record, dict):
                yield record


def corrections(records: Iterable[dict[str, Any]]) -> tuple[dict[str, list[str]], int]:
    """Prompts per corrected route, and how many corrections had no logged prompt.

    A correction is feedback whose ``correct_route`` differs from the decided route; the
    prompt comes from the decision record with the same id (logged with LOG_PROMPTS).
    """
    prompts: dict[str, str] = {}
    found: dict[str, list[str]] = defaultdict(list)
    missing = 0
    for record in records:
        kind, decision_id = record.get("type"), record.get("decision_id")
        if kind == "decision" and isinstance(record.get("prompt"), str):
            prompts[str(decision_id)] = record["prompt"]
        elif kind == "feedback":
            target = record.get("correct_route")
            if not target or target == record.get("route"):
                continue
            prompt = prompts.get(str(decision_id))
            if prompt is None:
                missing += 1
            elif prompt not in found[target]:
                found[target].append(prompt)
    return dict(found), missing


def utterance_snippets(found: dict[str, list[str]], known: Iterable[str] = ()) -> str:
    """One YAML snippet per route for review; prompts that already are utterances are left out."""
    seen = {normalise(u) for u in known}
    parts = []
    for route in sorted(found):
        fresh = [p for p in found[route] if normalise(p) not in seen]
        if not fresh:
            continue
        header = (
            f"# routes/{route}.yaml: {len(fresh)} candidate utterance(s) from corrected "
            "decisions; review, then add to 'utterances' and rebuild the index\n"
        )
        parts.append(header + yaml.safe_dump({"utterances": fresh}, allow_unicode=True))
    return "\n".join(parts)


def outcome_rows(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rated answers as outcome rows (``routes/outcomes`` format), and how many ratings
    had no logged prompt.

    The rated model is the one that answered (the completion record's ``model``), else the
    decided one for a ``/route`` decision; the rating (0 bad ... 1 good) is its score. A
    prompt rated several times keeps one row per rating: the estimator averages them.
    """
    prompts: dict[str, str] = {}
    routes: dict[str, str] = {}
    answered: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    missing = 0
    for record in records:
        kind, decision_id = record.get("type"), str(record.get("decision_id"))
        if kind == "decision":
            if isinstance(record.get("prompt"), str):
                prompts[decision_id] = record["prompt"]
            if isinstance(record.get("model"), str):
                answered.setdefault(decision_id, record["model"])
            routes[decision_id] = str(record.get("route"))
        elif kind == "completion" and record.get("ok") and isinstance(record.get("model"), str):
            answered[decision_id] = record["model"]
        elif kind == "feedback" and isinstance(record.get("rating"), int | float):
            prompt, model = prompts.get(decision_id), answered.get(decision_id)
            if prompt is None or model is None:
                missing += 1
                continue
            rating = min(max(float(record["rating"]), 0.0), 1.0)
            row = {"prompt": prompt, "outcomes": {model: rating}, "route": routes[decision_id]}
            rows.append(row)
    return rows, missing
