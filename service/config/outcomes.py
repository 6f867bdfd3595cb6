"""Outcome files: how well each model answered real prompts, the data model choice learns from.

One prompt a line, JSON: ``{"prompt": "...", "outcomes": {"<model>": <score in [0, 1]>, ...}}``.
A score is a correctness (0 or 1), a rating or a judge's grade scaled to [0, 1]; other keys
(``route``, token counts, a source) are allowed and ignored. A row may score any subset of the
models: a model is learned from the rows that score it.

They live in ``routes/outcomes/*.jsonl`` beside the routes, are read with the route set and
covered by the index fingerprint. Every problem of every file is listed at once, with its file
and line, so one fix-and-rebuild round is enough.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from service.config.problems import Problem, ProblemsError

OUTCOMES_DIR = "outcomes"


@dataclass(frozen=True)
class OutcomeRow:
    """One prompt and the score of every model that answered it."""

    prompt: str
    outcomes: Mapping[str, float]


class OutcomeDataError(ProblemsError):
    """Outcome data cannot be used; ``problems`` lists every bad line."""

    what = "outcome data"


def row_problems(row: object) -> list[str]:
    """Every reason a parsed line is not an outcome row (empty when it is one)."""
    if not isinstance(row, dict):
        return ["expected a JSON object with 'prompt' and 'outcomes'"]
    problems = []
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append("needs a non-empty 'prompt' string")
    outcomes = row.get("outcomes")
    if not isinstance(outcomes, dict) or not outcomes:
        problems.append("needs 'outcomes', an object of model -> score in [0, 1]")
        return problems
    for model, score in outcomes.items():
        if not model.strip() or any(ch.isspace() for ch in model):
            problems.append(f"outcomes: '{model}' is not a model string (no spaces)")
        number = isinstance(score, int | float) and not isinstance(score, bool)
        if not number or not math.isfinite(score) or not 0.0 <= score <= 1.0:
            problems.append(f"outcomes.{model}: {score!r} is not a score in [0, 1]")
    return problems


def parse_outcomes(text: str, shown: str) -> tuple[list[OutcomeRow], list[Problem]]:
    """The rows of one file's text, and the problems of its bad lines (blank lines skipped)."""
    rows: list[OutcomeRow] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(Problem(shown, f"line {number}", f"not JSON ({error.msg})"))
            continue
        found = row_problems(row)
        if found:
            problems.extend(Problem(shown, f"line {number}", message) for message in found)
            continue
        scores = {str(model): float(score) for model, score in row["outcomes"].items()}
        rows.append(OutcomeRow(prompt=row["prompt"].strip(), outcomes=scores))
    return rows, problems


def read_outcome_files(paths: Sequence[Path]) -> list[OutcomeRow]:
    """Every row of ``paths`` in order, or OutcomeDataError listing every bad line of all."""
    rows: list[OutcomeRow] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(Problem(str(path), "", f"cannot be read ({error})"))
            continue
        found_rows, found = parse_outcomes(text, str(path))
        rows.extend(found_rows)
        problems.extend(found)
    if problems:
        raise OutcomeDataError(problems)
    return rows


def outcome_files(routes_dir: Path) -> list[Path]:
    """``routes/outcomes/*.jsonl``, sorted, or none when the folder does not exist."""
    folder = routes_dir / OUTCOMES_DIR
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def model_counts(rows: Iterable[OutcomeRow]) -> Counter[str]:
    """How many rows score each model."""
    return Counter(model for row in rows for model in row.outcomes)


def unlisted_models(rows: Iterable[OutcomeRow], listed: Iterable[str]) -> dict[str, int]:
    """Models the outcomes score but no route lists, with their row counts.

    They cannot be chosen, so they teach the estimator nothing; the build reports them
    rather than dropping them silently (a typo in a model name looks exactly like this).
    """
    known = set(listed)
    return {model: n for model, n in sorted(model_counts(rows).items()) if model not in known}
