"""Labelled data in, routing metrics out: dataset readers, route sets from data, the metrics.

Out-of-scope queries ("oos", "none" or an empty label) are a class of their own: the router
answers them correctly by abstaining (method "default").
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.config.jsonl import text_rows
from service.config.routes import OUT_OF_SCOPE_LABELS, Route, RouterConfig, RouteSet

OOS = "oos"
PLACEHOLDER_MODEL = "openai/gpt-4.1-mini"


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None  # None: out of scope


class DatasetError(ValueError):
    pass


def _label(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return None if text.casefold() in OUT_OF_SCOPE_LABELS else text


def read_examples(path: Path) -> list[Example]:
    """Read ``{"text", "label"}`` JSONL, or a CSV with ``text`` and ``label`` columns."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    examples: list[Example] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
                raise DatasetError(f"{path}: a CSV needs 'text' and 'label' columns")
            for row in reader:
                if row["text"] and row["text"].strip():
                    examples.append(Example(row["text"].strip(), _label(row["label"])))
        return examples
    for number, record, problem in text_rows(path.read_text(encoding="utf-8")):
        if record is None:
            raise DatasetError(f"{path}:{number}: {problem}")
        if "label" not in record:
            raise DatasetError(f"{path}:{number}: no 'label' (use \"oos\" for out of scope)")
        if record["text"].strip():
            examples.append(Example(record["text"].strip(), _label(record.get("label"))))
    return examples


def read_clinc(path: Path, splits: Sequence[str]) -> list[Example]:
    """Examples of the named splits of a CLINC150 ``data_full.json``-style file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [split for split in splits if split not in data]
    if missing:
        raise DatasetError(f"{path}: no split(s) {missing}; it has {sorted(data)}")
    return [Example(text, _label(label)) for split in splits for text, label in data[split]]


def route_name(label: str) -> str:
    """A route name for a dataset label (route names are [a-z0-9_-]+)."""
    name = re.sub(r"[^a-z0-9_-]+", "_", label.casefold()).strip("_")
    return name or "route"


def route_set_from_examples(examples: Iterable[Example]) -> tuple[RouteSet, dict[str, str]]:
    """One route per in-scope label; returns the set and route name -> original label."""
    utterances: dict[str, dict[str, None]] = {}
    labels: dict[str, str] = {}
    for example in examples:
        if example.label is None:
            continue
        name = route_name(example.label)
        if labels.setdefault(name, example.label) != example.label:
            raise DatasetError(f"labels '{labels[name]}' and '{example.label}' clash as '{name}'")
        utterances.setdefault(name, {})[example.text] = None
    if not utterances:
        raise DatasetError("the training data holds no in-scope example")
    routes = tuple(
        Route(name=name, description=labels[name], model=PLACEHOLDER_MODEL, utterances=tuple(texts))
        for name, texts in utterances.items()
    )
    return RouteSet(routes=routes, config=RouterConfig(default_route=routes[0].name)), labels


@dataclass(frozen=True)
class Scored:
    """One evaluated query: truth, prediction (None = abstained) and the confidence used."""

    truth: str | None
    predicted: str | None
    confidence: float
    top: str | None = None  # the best route even when the router abstained


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def metrics(results: Sequence[Scored]) -> dict[str, Any]:
    """The report's numbers; OOS counts as a class in accuracy and macro-F1."""
    from sklearn.metrics import f1_score, roc_auc_score

    truth = [r.truth or OOS for r in results]
    predicted = [r.predicted or OOS for r in results]
    correct = np.array([t == p for t, p in zip(truth, predicted, strict=True)], dtype=bool)
    in_scope = np.array([r.truth is not None for r in results], dtype=bool)
    predicted_oos = np.array([r.predicted is None for r in results], dtype=bool)
    true_oos = ~in_scope
    hits = int((predicted_oos & true_oos).sum())
    precision = hits / int(predicted_oos.sum()) if predicted_oos.any() else 0.0
    recall = hits / int(true_oos.sum()) if true_oos.any() else 0.0
    confidence = np.array([r.confidence for r in results])
    auroc = (
        float(roc_auc_score(in_scope.astype(int), confidence))
        if in_scope.any() and true_oos.any()
        else None
    )
    confusions = Counter(
        (t, p) for t, p in zip(truth, predicted, strict=True) if t != p and t != OOS
    )
    return {
        "n_test": len(results),
        "n_in_scope": int(in_scope.sum()),
        "n_oos": int(true_oos.sum()),
        "overall_accuracy": float(correct.mean()) if len(results) else 0.0,
        "in_scope_accuracy": float(correct[in_scope].mean()) if in_scope.any() else None,
        "top_route_accuracy": float(np.mean([r.top == r.truth for r in results if r.truth]))
        if in_scope.any()
        else None,
        "oos_precision": precision if true_oos.any() else None,
        "oos_recall": recall if true_oos.any() else None,
        "oos_f1": _f1(precision, recall) if true_oos.any() else None,
        "auroc": auroc,
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0))
        if results
        else 0.0,
        "most_confused": [
            {"truth": t, "predicted": p, "count": n} for (t, p), n in confusions.most_common(10)
        ],
    }
