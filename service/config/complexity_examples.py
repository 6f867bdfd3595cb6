"""``routes/complexity.jsonl``: prompts labelled easy or hard, read and checked."""

from __future__ import annotations

from pathlib import Path

from service.config.jsonl import text_rows

COMPLEXITY_FILE = "complexity.jsonl"
LABELS = {"easy": 0, "hard": 1}


class ComplexityDataError(ValueError):
    """The labelled file cannot be used; the message names the file and the line."""


def read_labelled(path: Path) -> tuple[list[str], list[int]]:
    """``{"text", "label": "easy"|"hard"}`` lines of ``path``."""
    texts: list[str] = []
    labels: list[int] = []
    for number, row, problem in text_rows(path.read_text(encoding="utf-8")):
        if problem and problem.startswith("not JSON"):
            raise ComplexityDataError(f"{path}: line {number}: {problem}")
        text = row.get("text") if row else None
        label = row.get("label") if row else None
        if not isinstance(text, str) or not text.strip() or label not in LABELS:
            raise ComplexityDataError(
                f"{path}: line {number}: needs a non-empty 'text' and 'label': easy or hard"
            )
        texts.append(text.strip())
        labels.append(LABELS[label])
    if len(set(labels)) < 2:
        raise ComplexityDataError(f"{path}: needs both easy and hard examples")
    return texts, labels
