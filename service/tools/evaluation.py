"""Labelled data in, routing metrics out: dataset readers, route sets from data, the metrics.

Out-of-scope queries ("oos", "none" or an empty label) are a class of their own: the router
answers them correctly by abstaining (method "default").
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
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
    source: str | None = None  # where the prompt came from: held out whole in evaluation
    lang: str | None = None


class DatasetError(ValueError):
    pass


def _label(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return None if text.casefold() in OUT_OF_SCOPE_LABELS else text


def read_examples(path: Path, label_key: str = "label") -> list[Example]:
    """Read ``{"text", "label", "source"?, "lang"?}`` JSONL, or a CSV with ``text`` and ``label``.

    ``label_key`` names the label field of a JSONL file (the prompt pool's is
    ``suggested_route``).
    """
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
        if label_key not in record:
            raise DatasetError(f"{path}:{number}: no '{label_key}' (use \"oos\" for out of scope)")
        if record["text"].strip():
            examples.append(
                Example(
                    record["text"].strip(),
                    _label(record.get(label_key)),
                    _optional(record.get("source")),
                    _optional(record.get("lang")),
                )
            )
    return examples


def _optional(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value)


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
    source: str | None = None
    lang: str | None = None
    # The router's calibrated P(this decision is right), where it gives one.
    probability: float | None = None

    @property
    def right(self) -> bool:
        return self.truth == self.predicted


ECE_BINS = 10


def reliability(results: Sequence[Scored], bins: int = ECE_BINS) -> dict[str, Any]:
    """Expected calibration error and the reliability diagram's bins.

    Each decision's stated probability of being right is compared with how often decisions
    of that probability were right, in equal-width bins; ECE is the count-weighted mean gap.
    Decisions without a probability are left out.
    """
    rated = [r for r in results if r.probability is not None]
    if not rated:
        return {"ece": None, "bins": []}
    probability = np.array([r.probability for r in rated], dtype=float)
    right = np.array([r.right for r in rated], dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probability, edges[1:-1]), 0, bins - 1)
    table = []
    ece = 0.0
    for b in range(bins):
        members = which == b
        if not members.any():
            continue
        stated, observed = float(probability[members].mean()), float(right[members].mean())
        ece += members.sum() / len(rated) * abs(stated - observed)
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(members.sum()),
                "stated": stated,
                "observed": observed,
            }
        )
    return {"ece": float(ece), "bins": table}


def accuracy_by(results: Sequence[Scored], key: str) -> dict[str, dict[str, float | int]]:
    """Accuracy per value of ``key`` ("source", "lang" or "truth"), largest group first."""
    groups: dict[str, list[bool]] = {}
    for result in results:
        value = getattr(result, key)
        groups.setdefault("none" if value is None else str(value), []).append(result.right)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return {name: {"n": len(hits), "accuracy": float(np.mean(hits))} for name, hits in ordered}


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
        "by_source": accuracy_by(results, "source"),
        "by_lang": accuracy_by(results, "lang"),
        "by_label": accuracy_by(results, "truth"),
        "calibration": reliability(results),
        "most_confused": [
            {"truth": t, "predicted": p, "count": n} for (t, p), n in confusions.most_common(10)
        ],
    }


def source_group(source: str | None) -> str:
    """The unit held out together: a repository, or one BIG-bench task.

    A source's files (XQuAD's twelve languages, say) share their style, so holding out one
    file while training on its siblings would flatter; BIG-bench's tasks are independent
    datasets by different authors, so each task is a source of its own.
    """
    if not source:
        return "unknown"
    if source.startswith("pypi:bigbench"):
        return "bigbench/" + source.split("benchmark_tasks/")[-1].split("/")[0]
    return source.split("@")[0]


def _hash(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def normalised(text: str) -> str:
    return " ".join(text.casefold().split())


def source_folds(
    examples: Sequence[Example], folds: int, max_per_source: int
) -> list[tuple[frozenset[str], list[Example]]]:
    """Sources dealt into ``folds`` groups: (normalised texts of the fold's sources, test rows).

    Every row of a fold's sources is withheld from training, but at most ``max_per_source``
    rows per source (chosen by a hash of the text) are routed, which bounds the run time
    without letting one large source dominate.
    """
    by_group: dict[str, list[Example]] = {}
    for example in examples:
        by_group.setdefault(source_group(example.source), []).append(example)
    names = sorted(by_group, key=_hash)
    out = []
    for fold in range(folds):
        members = names[fold::folds]
        if not members:
            continue
        texts = frozenset(normalised(e.text) for g in members for e in by_group[g])
        rows = [
            replace_source(e, g)
            for g in members
            for e in sorted(by_group[g], key=lambda e: _hash(e.text))[:max_per_source]
        ]
        out.append((texts, rows))
    return out


def row_folds(examples: Sequence[Example], folds: int) -> list[tuple[list[Example], list[Example]]]:
    """Rows dealt into ``folds`` groups by a hash of the text: (training rows, test rows).

    The mirror of ``source_folds``: a random row split of one labelled set, for learning how
    far the set's own labelled rows carry the routes. Rows of one source share its style and
    its labelling, so this flatters on purpose: it is the ceiling, not the transfer. Rows of
    one text share a fold, so no prompt is routed by its own copy.
    """
    keys = sorted({normalised(e.text) for e in examples}, key=_hash)
    fold_of = {key: i % folds for i, key in enumerate(keys)}
    dealt = [(fold_of[normalised(e.text)], e) for e in examples]
    out = []
    for fold in range(folds):
        test = [e for f, e in dealt if f == fold]
        if test:
            out.append(([e for f, e in dealt if f != fold], test))
    return out


def with_examples(route_set: RouteSet, examples: Iterable[Example]) -> RouteSet:
    """The route set with each example's text added to its label's route as an utterance.

    Examples labelled out of scope, or with a label no route has, are left out: the routes
    stay the routes, and only learn more of what they already serve.
    """
    added: dict[str, list[str]] = {}
    for example in examples:
        if example.label is not None:
            added.setdefault(route_name(example.label), []).append(example.text)
    routes = tuple(
        route.model_copy(update={"utterances": route.utterances + tuple(added[route.name])})
        if route.name in added
        else route
        for route in route_set.routes
    )
    return replace(route_set, routes=routes)


def replace_source(example: Example, group: str) -> Example:
    return replace(example, source=group)


def without_texts(route_set: RouteSet, texts: frozenset[str]) -> RouteSet:
    """The route set less every utterance and calibration row whose text is in ``texts``.

    A route left with no utterance is dropped (its prompts then cannot be routed right,
    which is what a source-held-out measurement should show).
    """
    routes = []
    for route in route_set.routes:
        kept = tuple(u for u in route.utterances if normalised(u) not in texts)
        wide = tuple(u for u in route.wide_utterances if normalised(u) not in texts)
        if kept:
            routes.append(route.model_copy(update={"utterances": kept, "wide_utterances": wide}))
    names = {route.name for route in routes}
    calibration = tuple(
        (text, label)
        for text, label in route_set.calibration
        if normalised(text) not in texts and (label is None or label in names)
    )
    return replace(route_set, routes=tuple(routes), calibration=calibration)


class MemoEncoder:
    """An encoder that embeds each distinct text once, so repeated builds only fit.

    Leave-sources-out evaluation rebuilds the index once per fold from mostly the same
    utterances; encoding is most of a build's time.
    """

    def __init__(self, encoder: Any, store: Path | None = None) -> None:
        self._encoder = encoder
        self._memo: dict[str, np.ndarray] = {}
        self.model_id = encoder.model_id
        self.dimension = encoder.dimension
        self.backend = getattr(encoder, "backend", None)
        self.graph = getattr(encoder, "graph", None)
        identity = getattr(encoder, "vector_identity", None)
        self._identity = json.dumps(
            identity() if callable(identity) else {"model": self.model_id}, sort_keys=True
        )
        self.store = store
        if store is not None:
            self._load(store)

    def _load(self, path: Path) -> None:
        """Vectors an earlier run saved for this encoder's identity; anything else is ignored."""
        if not path.exists():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["identity"]) != self._identity:
                    return
                keys, vectors = data["keys"], data["vectors"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return
        if vectors.shape == (len(keys), self.dimension):
            self._memo.update(zip(keys.tolist(), vectors, strict=True))

    def save(self) -> None:
        """Keep the vectors for the next run (``store``): reruns of an evaluation then embed
        only the texts that changed."""
        if self.store is None or not self._memo:
            return
        keys = sorted(self._memo)
        self.store.parent.mkdir(parents=True, exist_ok=True)
        temp = self.store.with_name(f"{self.store.stem}.{os.getpid()}.tmp.npz")
        np.savez(
            temp,
            identity=np.array(self._identity),
            keys=np.array(keys, dtype="U64"),
            vectors=np.stack([self._memo[key] for key in keys]).astype(np.float32),
        )
        temp.replace(self.store)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> Any:
        keys = [hashlib.sha256(text.encode("utf-8")).hexdigest() for text in texts]
        missing = {
            key: text for key, text in zip(keys, texts, strict=True) if key not in self._memo
        }
        if missing:
            vectors = self._encoder.encode(list(missing.values()), batch_size, progress)
            for key, vector in zip(missing, vectors, strict=True):
                self._memo[key] = vector
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._memo[key] for key in keys])

    def encode_one(self, text: str) -> np.ndarray:
        return np.asarray(self.encode([text])[0])

    def encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.encode(list(texts)))


def format_table(title: str, groups: dict[str, dict[str, float | int]]) -> str:
    """A plain-text table of per-group accuracy, for the terminal."""
    width = max([len(title), *(len(name) for name in groups)])
    lines = [f"{title:<{width}}  {'n':>5}  accuracy"]
    lines += [f"{name:<{width}}  {g['n']:>5}  {g['accuracy']:.3f}" for name, g in groups.items()]
    return "\n".join(lines)
