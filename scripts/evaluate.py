"""Measure routing accuracy on labelled data, through the same code the service uses.

    python scripts/evaluate.py --train TRAIN.jsonl [--calibration CAL.jsonl] --test TEST.jsonl \\
        --report REPORT.json [--png PLOT.png] [--method classifier|knn]
    python scripts/evaluate.py --clinc data_full.json --train train --calibration val,oos_val \\
        --test test --report REPORT.json
    python scripts/evaluate.py --routes routes --test tests/data/default_routes_holdout.jsonl \\
        --report REPORT.json
    python scripts/evaluate.py --routes routes --test ../shared/data/prompts/prompts.jsonl \\
        --label-key suggested_route --leave-sources-out 8 --report REPORT.json --png PLOT.png

Files hold one {"text": ..., "label": ..., "source"?: ..., "lang"?: ...} per line (or a CSV
with text,label columns); the label "oos" (or "none", or empty) means no route fits. The
report gives accuracy per source, per language and per label, the expected calibration error
of the router's confidence, and (--png) a reliability diagram.

--leave-sources-out K measures transfer to prompts of unseen sources: the test rows' sources
are dealt into K folds; for each fold, every utterance and calibration row whose text
belongs to one of its sources is taken out of the routes, the index is rebuilt, and that
fold's rows are routed. A random row split of one source flatters; this does not.
--learn-folds K is that random split, on purpose: the test rows are dealt into K folds, and
each fold is routed by the routes plus the other folds' rows as utterances. It tells how far
a set's own labelled prompts carry the routes (a ceiling for prompts of that source), not how
they transfer. With --clinc, --train,
--calibration and --test name splits of that file (comma-separated to join several).
With --routes, a route folder is evaluated as it is (with its own calibration.jsonl).
The index is built in a temporary folder; nothing in index/ is touched. The wide encoder
(SEMROUTE_WIDE_ENCODER, or --wide-encoder; none turns it off) is built and used as the
service would: compare runs with and without it per language. --adapt-encoder fits a
contrastive adapter on each fold's utterances (service/tools/adaptation.py), an experiment
measured in the README and not kept in the build.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from service.config.routes import RouteSet, RouteSetError, load_route_set
from service.config.settings import Settings
from service.encoding.e5 import load_wide_encoder
from service.encoding.encoder import load_encoder
from service.index.store import build_index, load_index
from service.routing.scoring import Abstain
from service.routing.semantic import SemanticStage
from service.tools.adaptation import AdaptedEncoder, adapt_encoders
from service.tools.evaluation import (
    DatasetError,
    Example,
    MemoEncoder,
    Scored,
    format_table,
    metrics,
    read_clinc,
    read_examples,
    reliability,
    route_name,
    route_set_from_examples,
    row_folds,
    source_folds,
    with_examples,
    without_texts,
)


def _examples(source: str | None, clinc: Path | None, label_key: str = "label") -> list[Example]:
    if source is None:
        return []
    if clinc is not None:
        return read_clinc(clinc, [split.strip() for split in source.split(",") if split.strip()])
    return read_examples(Path(source), label_key)


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


def _scored(example: Example, result: Any, names: Sequence[str], route_set: RouteSet) -> Scored:
    """One decision as the service makes it when no tie-breaker settles the prompt."""
    top = names[int(result.ranked.positions[0])] if len(result.ranked.positions) else None
    truth = route_name(example.label) if example.label is not None else None
    keep_top = result.abstain is None or (
        route_set.config.undecided == "top" and result.abstain is not Abstain.OUT_OF_SCOPE
    )
    return Scored(
        truth=truth,
        predicted=top if keep_top else None,
        confidence=result.evidence,
        top=top,
        source=example.source,
        lang=example.lang,
        probability=result.confidence,
    )


def _write_rows(path: Path, rows: list[tuple[Example, Scored]]) -> None:
    """One line per routed row, for reading where a source's prompts go and why."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "text": example.text,
                "source": scored.source,
                "lang": scored.lang,
                "label": scored.truth,
                "route": scored.predicted,
                "top": scored.top,
                "evidence": round(float(scored.confidence), 4),
                "confidence": None
                if scored.probability is None
                else round(float(scored.probability), 4),
            },
            ensure_ascii=False,
        )
        for example, scored in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _plot(path: Path, results: list[Scored], evidence: np.ndarray, method: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    in_scope = np.array([r.truth is not None for r in results])
    right = np.array([r.truth is not None and r.truth == r.top for r in results])
    figure, (left, sweep, diagram) = plt.subplots(1, 3, figsize=(17, 4.5))
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
    table = reliability(results)
    diagram.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    if table["bins"]:
        centres = [(b["low"] + b["high"]) / 2 for b in table["bins"]]
        diagram.bar(
            centres,
            [b["observed"] for b in table["bins"]],
            width=0.09,
            alpha=0.7,
            label=f"observed accuracy (ECE {table['ece']:.3f})",
        )
        diagram.plot(centres, [b["stated"] for b in table["bins"]], "o", color="black", ms=3)
    diagram.set_xlim(0, 1)
    diagram.set_ylim(0, 1)
    diagram.set_xlabel("stated confidence")
    diagram.set_ylabel("share of decisions right")
    diagram.set_title("reliability diagram")
    diagram.legend(loc="upper left")
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
    parser.add_argument("--classifier-c", type=float, help="override router.yaml classifier_c")
    parser.add_argument("--knn-weight", type=float, help="override router.yaml knn_weight")
    parser.add_argument("--label-key", default="label", help="label field of JSONL test rows")
    parser.add_argument(
        "--leave-sources-out",
        type=int,
        metavar="K",
        help="hold out the test rows' sources in K folds, rebuilding the routes without them",
    )
    parser.add_argument(
        "--max-per-source", type=int, default=150, help="with --leave-sources-out: rows per source"
    )
    parser.add_argument(
        "--learn-folds",
        type=int,
        metavar="K",
        help="deal the test rows into K folds and route each with the others added to the routes",
    )
    parser.add_argument(
        "--langs", help="only the test rows of these languages (comma-separated lang codes)"
    )
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
    parser.add_argument(
        "--wide-encoder",
        default=Settings().wide_encoder,
        help="wide encoder for prompts in scripts the model does not cover, or none "
        "(default: SEMROUTE_WIDE_ENCODER)",
    )
    parser.add_argument(
        "--rows-out",
        type=Path,
        help="write one JSON line per routed row: text, source, lang, label, route, top, "
        "confidence (see where a source's rows go)",
    )
    parser.add_argument(
        "--embedding-store",
        type=Path,
        metavar="DIR",
        help="keep every embedded text's vector in DIR across runs (one file per encoder "
        "identity), so a rerun embeds only new texts",
    )
    parser.add_argument(
        "--adapt-encoder",
        choices=["cosine", "supcon"],
        metavar="LOSS",
        help="fit a contrastive adapter with this loss (cosine: SetFit's pairs; supcon) on "
        "each fold's utterances, applied after the frozen encoder "
        "(service/tools/adaptation.py; an experiment, not part of the build)",
    )
    parser.add_argument("--adapt-decay", type=float, default=1e-3, help="the adapter's L2 decay")
    parser.add_argument(
        "--adapt-wide", choices=["yes", "no"], default="yes", help="adapt the wide encoder too"
    )
    args = parser.parse_args(argv)
    if (args.train is None) == (args.routes is None):
        parser.error("give either --train (with optional --calibration) or --routes")
    if args.leave_sources_out is not None and args.leave_sources_out < 2:
        parser.error("--leave-sources-out needs at least 2 folds")
    if args.learn_folds is not None and args.learn_folds < 2:
        parser.error("--learn-folds needs at least 2 folds")
    if args.learn_folds and args.leave_sources_out:
        parser.error("give --leave-sources-out or --learn-folds, not both")

    try:
        route_set = _route_set(args)
        test = _examples(args.test, args.clinc, args.label_key)
    except (DatasetError, RouteSetError, OSError, json.JSONDecodeError) as error:
        print(f"cannot evaluate: {error}", file=sys.stderr)
        return 2
    if args.langs:
        wanted = {lang.strip() for lang in args.langs.split(",")}
        test = [example for example in test if example.lang in wanted]
    if not test:
        print("cannot evaluate: the test data holds no example", file=sys.stderr)
        return 2
    update: dict[str, Any] = {"scoring": args.method}
    if args.classifier_c is not None:
        update["classifier_c"] = args.classifier_c
    if args.knn_weight is not None:
        update["knn_weight"] = args.knn_weight
    route_set = replace(route_set, config=route_set.config.model_copy(update=update))

    def store(model: str) -> Path | None:
        if args.embedding_store is None:
            return None
        return args.embedding_store / (re.sub(r"[^a-z0-9]+", "-", model.lower()) + ".npz")

    encoder = MemoEncoder(
        load_encoder(
            args.model,
            args.encoder_backend,
            cache_size=0,
            graph=args.onnx_graph,
            cache_dir=Settings().cache_dir,
        ),
        store(args.model),
    )
    wide_model = Settings(wide_encoder=args.wide_encoder).wide_model
    wide = load_wide_encoder(wide_model, cache_size=0, cache_dir=Settings().cache_dir)
    wide_encoder = MemoEncoder(wide, store(wide.model_id)) if wide is not None else None
    if args.leave_sources_out:
        folds = [
            (without_texts(route_set, held_out), rows)
            for held_out, rows in source_folds(test, args.leave_sources_out, args.max_per_source)
        ]
    elif args.learn_folds:
        folds = [
            (with_examples(route_set, train), rows)
            for train, rows in row_folds(test, args.learn_folds)
        ]
    else:
        folds = [(route_set, test)]
    results: list[Scored] = []
    decided: list[Any] = []
    dumped: list[tuple[Example, Scored]] = []
    build_seconds = route_seconds = adapt_seconds = 0.0
    calibration_source = None
    for fold_routes, rows in folds:
        fold_encoder: MemoEncoder | AdaptedEncoder = encoder
        fold_wide: MemoEncoder | AdaptedEncoder | None = wide_encoder
        if args.adapt_encoder:
            started = time.perf_counter()
            fold_encoder, fold_wide = adapt_encoders(
                fold_routes,
                encoder,
                wide_encoder,
                wide=args.adapt_wide == "yes",
                loss=args.adapt_encoder,
                decay=args.adapt_decay,
            )
            adapt_seconds += time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="semroute-eval-") as folder:
            started = time.perf_counter()
            build_index(fold_routes, fold_encoder, Path(folder), wide_encoder=fold_wide)
            build_seconds += time.perf_counter() - started
            stage = SemanticStage(
                fold_routes, load_index(Path(folder)), fold_encoder, wide_encoder=fold_wide
            )
            started = time.perf_counter()
            fold_decided = stage.score_many([example.text for example in rows])
            route_seconds += time.perf_counter() - started
            stage.close()
        calibration_source = stage.index.calibration.source if stage.index.calibration else None
        names = stage.index.route_names
        for example, result in zip(rows, fold_decided, strict=True):
            results.append(_scored(example, result, names, fold_routes))
            dumped.append((example, results[-1]))
        decided.extend(fold_decided)
        for memo in (encoder, wide_encoder):
            if memo is not None:
                memo.save()
    if args.rows_out is not None:
        _write_rows(args.rows_out, dumped)

    report: dict[str, Any] = {
        "method": args.method,
        "embedding_model": args.model,
        "wide_encoder": wide_model,
        "encoder_backend": getattr(encoder, "backend", args.encoder_backend),
        "onnx_graph": getattr(encoder, "graph", None),
        **metrics(results),
        "decisions_per_second": round(len(results) / route_seconds, 1) if route_seconds else None,
        "leave_sources_out": args.leave_sources_out,
        "learn_folds": args.learn_folds,
        "abstain_rate": float(np.mean([r.abstain is not None for r in decided])),
        "classifier_c": route_set.config.classifier_c,
        "knn_weight": route_set.config.knn_weight,
        "routes": len(route_set.routes),
        "train_utterances": sum(len(r.utterances) for r in route_set.routes),
        "calibration_examples": len(route_set.calibration),
        "calibration_source": calibration_source,
        "build_seconds": round(build_seconds, 2),
        "route_seconds": round(route_seconds, 2),
        "adapter": None
        if not args.adapt_encoder
        else {
            "loss": args.adapt_encoder,
            "decay": args.adapt_decay,
            "wide": args.adapt_wide == "yes",
            "fit_seconds": round(adapt_seconds, 2),
        },
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.png:
        _plot(args.png, results, np.array([r.confidence for r in results]), args.method)
    shown: tuple[str, ...] = (
        "overall_accuracy",
        "in_scope_accuracy",
        "top_route_accuracy",
        "oos_precision",
    )
    shown += ("oos_recall", "oos_f1")
    shown += ("auroc", "macro_f1", "abstain_rate", "decisions_per_second")
    for key in shown:
        value = report[key]
        print(f"{key:<22} {value:.4f}" if isinstance(value, float) else f"{key:<22} {value}")
    ece = report["calibration"]["ece"]
    print(f"{'ece':<22} {ece:.4f}" if ece is not None else f"{'ece':<22} None")
    if any(r.source for r in results):
        print(format_table("source", report["by_source"]))
    if any(r.lang for r in results):
        print(format_table("lang", report["by_lang"]))
    print(f"report: {args.report}" + (f", plot: {args.png}" if args.png else ""))
    if args.rows_out is not None:
        print(f"rows: {args.rows_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
