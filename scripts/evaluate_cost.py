"""Measure the quality kept against the money spent by learned model choice, on outcome data.

python scripts/evaluate_cost.py OUTCOMES.jsonl --cv 5 --report R.json [--png P.png]
python scripts/evaluate_cost.py --train TRAIN.jsonl --test TEST.jsonl --prices PRICES.json
python scripts/evaluate_cost.py --routellm-mmlu ../shared/data/routellm-mmlu --cv 5
python scripts/evaluate_cost.py --routellm-mmlu ../shared/data/routellm-mmlu --subject-split even

OUTCOMES is the format of routes/outcomes/ (``{"prompt", "outcomes": {model: score}}`` per
line). Prices are USD per 1k tokens (mean of input and output), from litellm's cost map or
``--prices`` (a JSON object model -> price). Prints APGR, CPT(50%), CPT(80%) and the cost
saving at CPT(80%) of the learned router, a random and an oracle one, a learning curve and,
with more than two models, the quality reached at a set of budgets. ``--subject-split``
trains on half of MMLU's subjects (even or odd positions, alphabetically) and tests on the
others: how the estimate does on prompts unlike its training ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from service.config.complexity_examples import ComplexityDataError, read_labelled
from service.config.outcomes import OutcomeDataError, OutcomeRow, read_outcome_files
from service.config.settings import Settings
from service.encoding.encoder import EncoderError, load_encoder
from service.index import complexity
from service.routing.tier_choice import litellm_cost_per_1k
from service.tools import cost_eval


def read_prices(path: Path | None, models: list[str], defaults: dict[str, float]) -> list[float]:
    given: dict[str, float] = dict(defaults)
    if path is not None:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a JSON object of model -> USD per 1k tokens")
        given.update({str(k): float(v) for k, v in loaded.items()})
    prices = [given[m] if m in given else litellm_cost_per_1k(m) for m in models]
    missing = [m for m, p in zip(models, prices, strict=True) if p is None]
    if missing:
        raise ValueError(
            f"no price for {', '.join(missing)} in litellm's cost map; give --prices "
            '(a JSON object: {"<model>": <USD per 1k tokens>})'
        )
    return [float(p) for p in prices if p is not None]


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("outcomes", type=Path, nargs="?", help="outcome file (JSON lines)")
    parser.add_argument("--routellm-mmlu", type=Path, help="RouteLLM's MMLU results folder")
    parser.add_argument("--cv", type=int, help="K-fold cross-validation")
    parser.add_argument(
        "--subject-split",
        choices=("even", "odd"),
        help="with --routellm-mmlu: train on these subjects (alphabetical positions), test on the rest",
    )
    parser.add_argument("--train", type=Path, help="training outcome file")
    parser.add_argument("--test", type=Path, help="test outcome file")
    parser.add_argument("--models", nargs="+", help="only these models (default: every one)")
    parser.add_argument("--prices", type=Path, help="JSON object: model -> USD per 1k tokens")
    parser.add_argument("--complexity", type=Path, help="also score with a complexity model")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(cost_eval.TRAIN_SIZES))
    parser.add_argument("--report", type=Path, help="write the report here (JSON)")
    parser.add_argument("--png", type=Path, help="draw the quality-cost curve here")
    parser.add_argument("--model", default=settings.embedding_model, help="embedding model")
    args = parser.parse_args(argv)

    sources = [args.outcomes is not None, args.routellm_mmlu is not None, args.train is not None]
    split = args.train is not None or args.subject_split is not None
    if (
        sum(sources) != 1
        or split == (args.cv is not None)
        or ((args.train is None) != (args.test is None))
        or (args.subject_split is not None and args.routellm_mmlu is None)
    ):
        parser.error(
            "give OUTCOMES or --routellm-mmlu with --cv K, --routellm-mmlu with "
            "--subject-split, or --train and --test"
        )
    try:
        train_rows: list[OutcomeRow]
        test_rows: list[OutcomeRow] = []
        if args.subject_split is not None:
            subjects = cost_eval.read_routellm_mmlu_subjects(args.routellm_mmlu)
            train_rows, test_rows = cost_eval.split_subjects(subjects, args.subject_split)
        elif args.routellm_mmlu is not None:
            train_rows = cost_eval.read_routellm_mmlu(args.routellm_mmlu)
        elif args.outcomes is not None:
            train_rows = read_outcome_files([args.outcomes])
        else:
            train_rows = read_outcome_files([args.train])
            test_rows = read_outcome_files([args.test])
    except (OutcomeDataError, OSError) as error:
        print(error, file=sys.stderr)
        return 2
    rows = train_rows + test_rows
    models = args.models or sorted({m for row in rows for m in row.outcomes})
    keep = cost_eval.complete_rows(rows, models)
    if len(keep) < len(rows):
        print(f"{len(rows) - len(keep)} rows do not score every model; left out", file=sys.stderr)
    if len(models) < 2:
        print(f"need outcomes of at least two models, found {models}", file=sys.stderr)
        return 2
    defaults = cost_eval.ROUTELLM_PRICES if args.routellm_mmlu else {}
    try:
        prices = read_prices(args.prices, models, defaults)
    except (ValueError, OSError) as error:
        print(error, file=sys.stderr)
        return 2

    rows = [rows[i] for i in keep]
    first_test = sum(1 for i in keep if i < len(train_rows))
    texts = [row.prompt for row in rows]
    try:
        encoder = load_encoder(
            args.model, settings.encoder_backend, cache_size=0, cache_dir=settings.cache_dir
        )
    except EncoderError as error:
        print(error, file=sys.stderr)
        return 2
    cache_dir = settings.cache_dir or Path.home() / ".cache" / "semroute"
    vectors = cost_eval.embed_cached(encoder, texts, cache_dir)
    scores = np.array([[row.outcomes[m] for m in models] for row in rows])
    data = cost_eval.Dataset(texts=texts, vectors=vectors, scores=scores)
    if args.cv is not None:
        folds = cost_eval.kfold(len(rows), args.cv)
        test = np.arange(len(rows))
    else:
        folds = [(np.arange(first_test), np.arange(first_test, len(rows)))]
        test = folds[0][1]

    expected = cost_eval.out_of_fold(data, folds)[test]
    extra = {}
    if args.complexity is not None:
        try:
            labelled = list(zip(*read_labelled(args.complexity), strict=True))
        except ComplexityDataError as error:
            print(error, file=sys.stderr)
            return 2
        estimator = complexity.fit_examples(labelled, encoder)
        extra["complexity model"] = estimator.hard_probability(
            vectors[test], [texts[i] for i in test]
        )
    report = cost_eval.evaluate(data, test, expected, models, prices, extra)
    report["method"] = (
        f"{args.cv}-fold cross-validation"
        if args.cv
        else f"{args.subject_split} subjects / the others"
        if args.subject_split
        else "train/test"
    )
    report["embedding_model"] = encoder.model_id
    training = len(folds[0][0])
    curve = []
    for size in [s for s in args.sizes if s < training] + [training]:
        predicted = (
            expected
            if size == training
            else cost_eval.out_of_fold(data, folds, train_size=size)[test]
        )
        partial = cost_eval.evaluate(data, test, predicted, models, prices)["routers"]["learned"]
        curve.append({"train_rows": size, **partial})
    report["learning_curve"] = curve
    if args.routellm_mmlu is not None:
        report["published"] = cost_eval.ROUTELLM_PUBLISHED
    print(cost_eval.format_report(report))
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=1), encoding="utf-8")
    if args.png is not None:
        strong = models.index(report["strong"])
        weak = models.index(report["weak"])
        s, w = scores[test, strong], scores[test, weak]
        cost_eval.plot(
            report,
            {
                "learned": cost_eval.quality_curve(expected[:, strong] - expected[:, weak], s, w),
                "random": cost_eval.quality_curve(np.zeros(len(test)), s, w),
                "oracle": cost_eval.quality_curve(s - w, s, w),
            },
            args.png,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
