"""Measure routing accuracy on labelled data, through the same code the service uses.

    python scripts/evaluate.py --train TRAIN.jsonl [--calibration CAL.jsonl] --test TEST.jsonl \\
        --report REPORT.json [--png PLOT.png] [--method classifier|knn]
    python scripts/evaluate.py --clinc data_full.json --train train --calibration val,oos_val \\
        --test test --report REPORT.json
    python scripts/evaluate.py --routes routes --test tests/data/default_routes_holdout.jsonl \\
        --report REPORT.json

Files hold one {"text": ..., "label": ...} per line (or a CSV with text,label columns);
the label "oos" (or "none", or empty) means no route fits. With --clinc, --train,
--calibration and --test name splits of that file (comma-separated to join several).
With --routes, a route folder is evaluated as it is (with its own calibration.jsonl).
The index is built in a temporary folder; nothing in index/ is touched.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from service.config.routes import RouteSet, RouteSetError, load_route_set
from service.config.settings import Settings
from service.encoding.encoder import load_encoder
from service.index.store import build_index, load_index
from service.routing.semantic import SemanticStage
from service.tools.evaluation import (
    DatasetError,
    Example,
    Scored,
    metrics,
    read_clinc,
    read_examples,
    route_name,
    route_set_from_examples,
)


def _examples(source: str | None, clinc: Path | None) -> list[Example]:
    if source is None:
        return []
    if clinc is not None:
        return read_clinc(clinc, [split.strip() for split in source.split(",") if split.strip()])
    return read_examples(Path(source))


def _route_set(args: argparse.Namespace) -> RouteSet:
    if args.routes is not None:
        return load_route_set(args.routes)
    train = _examples(args.train, args.clinc)
    calibration = _examples(args.calibration, args.clinc)
    route_set, _ = route_set_from_examples(train)
    known = set(route_set.names)
    held_out = tuple(
        (e.text, route_name(e.label) if e.label is not None else None)
        for e in calibration
        if e.label is None or route_name(e.label) in known
    )
    return replace(route_set, calibration=held_out)


def _plot(path: Path, results: list[Scored], evidence: np.ndarray, method: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    in_scope = np.array([r.truth is not None for r in results])
    right = np.array([r.truth is not None and r.truth == r.top for r in results])
    figure, (left, sweep) = plt.subplots(1, 2, figsize=(12, 4.5))
    bins = np.linspace(evidence.min(), evidence.max(), 50)
    left.hist(evidence[in_scope], bins=bins, alpha=0.6, label="in scope", density=True)
    if (~in_scope).any():
        left.hist(evidence[~in_scope], bins=bins, alpha=0.6, label="out of scope", density=True)
    left.set_xlabel("in-scope score" if method == "classifier" else "top route score")
    left.set_title("score distributions")
    left.legend()
    thresholds = np.quantile(evidence, np.linspace(0, 0.99, 100))
    accuracy, recall = [], []
    for t in thresholds:
        accepted = evidence >= t
        overall = np.where(accepted, right, ~in_scope)
        accuracy.append(overall.mean())
        recall.append((~accepted & ~in_scope).sum() / max(1, (~in_scope).sum()))
    sweep.plot(thresholds, accuracy, label="overall accuracy")
    if (~in_scope).any():
        sweep.plot(thresholds, recall, label="out-of-scope recall")
    sweep.set_xlabel("acceptance threshold")
    sweep.set_title("accuracy against the threshold")
    sweep.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", help="labelled training file (or CLINC split names)")
    parser.add_argument("--calibration", help="labelled held-out file, may include oos")
    parser.add_argument("--test", required=True, help="labelled evaluation file")
    parser.add_argument("--clinc", type=Path, help="a CLINC150 JSON file; the others name splits")
    parser.add_argument("--routes", type=Path, help="evaluate this route folder instead")
    parser.add_argument("--report", type=Path, required=True, help="where to write the JSON report")
    parser.add_argument("--png", type=Path, help="where to draw score histograms and sweeps")
    parser.add_argument("--method", choices=["classifier", "knn"], default="classifier")
    parser.add_argument("--model", default=Settings().embedding_model, help="embedding model")
    parser.add_argument(
        "--encoder-backend",
        choices=["auto", "torch", "onnx"],
        default=Settings().encoder_backend,
        help="encoder backend (default: SEMROUTE_ENCODER_BACKEND, else auto)",
    )
    parser.add_argument(
        "--onnx-graph",
        choices=["int8", "shipped"],
        default=Settings().onnx_graph,
        help="graph of the onnx backend (default: SEMROUTE_ONNX_GRAPH, else int8)",
    )
    args = parser.parse_args(argv)
    if (args.train is None) == (args.routes is None):
        parser.error("give either --train (with optional --calibration) or --routes")

    try:
        route_set = _route_set(args)
        test = _examples(args.test, args.clinc)
    except (DatasetError, RouteSetError, OSError, json.JSONDecodeError) as error:
        print(f"cannot evaluate: {error}", file=sys.stderr)
        return 2
    if not test:
        print("cannot evaluate: the test data holds no example", file=sys.stderr)
        return 2
    route_set = replace(
        route_set, config=route_set.config.model_copy(update={"scoring": args.method})
    )

    encoder = load_encoder(
        args.model,
        args.encoder_backend,
        cache_size=0,
        graph=args.onnx_graph,
        cache_dir=Settings().cache_dir,
    )
    with tempfile.TemporaryDirectory(prefix="semroute-eval-") as folder:
        started = time.perf_counter()
        build_index(route_set, encoder, Path(folder))
        build_seconds = time.perf_counter() - started
        stage = SemanticStage(route_set, load_index(Path(folder)), encoder)
        started = time.perf_counter()
        decided = stage.score_many([example.text for example in test])
        route_seconds = time.perf_counter() - started

    names = stage.index.route_names
    results: list[Scored] = []
    for example, result in zip(test, decided, strict=True):
        top = names[int(result.ranked.positions[0])] if len(result.ranked.positions) else None
        truth = route_name(example.label) if example.label is not None else None
        # As the service does when no tie-breaker settles the prompt (router.yaml "undecided").
        keep_top = result.abstain is None or route_set.config.undecided == "top"
        predicted = top if keep_top else None
        results.append(
            Scored(truth=truth, predicted=predicted, confidence=result.evidence, top=top)
        )
    report: dict[str, Any] = {
        "method": args.method,
        "embedding_model": args.model,
        "encoder_backend": getattr(encoder, "backend", args.encoder_backend),
        "onnx_graph": getattr(encoder, "graph", None),
        **metrics(results),
        "decisions_per_second": round(len(test) / route_seconds, 1) if route_seconds else None,
        "abstain_rate": float(np.mean([r.abstain is not None for r in decided])),
        "routes": len(route_set.routes),
        "train_utterances": sum(len(r.utterances) for r in route_set.routes),
        "calibration_examples": len(route_set.calibration),
        "calibration_source": stage.index.calibration.source if stage.index.calibration else None,
        "build_seconds": round(build_seconds, 2),
        "route_seconds": round(route_seconds, 2),
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.png:
        _plot(args.png, results, np.array([r.confidence for r in results]), args.method)
    shown = ("overall_accuracy", "in_scope_accuracy", "top_route_accuracy", "oos_precision")
    shown += ("oos_recall", "oos_f1")
    shown += ("auroc", "macro_f1", "abstain_rate", "decisions_per_second")
    for key in shown:
        value = report[key]
        print(f"{key:<22} {value:.4f}" if isinstance(value, float) else f"{key:<22} {value}")
    print(f"report: {args.report}" + (f", plot: {args.png}" if args.png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
