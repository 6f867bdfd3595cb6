"""Decision latency by path: English, prompts read by both encoders, and the wide path.

    python scripts/language_latency.py [--prompts tests/data/multilingual_math.jsonl]
        [--wide-max-tokens N]

Loads routes/ and index/ as the service does (SEMROUTE_* settings, the wide encoder
included), then times ``Router.decide`` one prompt at a time, each prompt once so the encoder
cache never flatters a figure: English prompts of ``tests/data/default_routes_holdout.jsonl``
(short: under 120 characters), and the prompts of the file by how they are read
(``service/encoding/scripts.py``: the primary encoder alone, with the wide one when unsure,
both encoders, or the wide one),
with the share routed to their label; those the wide encoder reads also by language and for
their long prompts (over 250 characters). It also prints the wide encoder's own time on those
prompts and their token counts.
``--wide-max-tokens`` overrides the wide encoder's token budget for prompts (the index keeps
the vectors of its build). The machine is
usually shared: compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.api.engine import build_engine, load_state  # noqa: E402
from service.config.settings import Settings  # noqa: E402
from service.encoding.e5 import (  # noqa: E402
    CHARS_PER_TOKEN_BOUND,
    E5_MAX_TOKENS,
    E5Encoder,
    load_wide_encoder,
)
from service.encoding.encoder import load_encoder  # noqa: E402
from service.encoding.scripts import Reading, reading  # noqa: E402
from service.routing.types import RouteRequest  # noqa: E402
from service.state.local import LocalState  # noqa: E402

HOLDOUT = ROOT / "tests" / "data" / "default_routes_holdout.jsonl"


LONG_CHARS = 250


def _rows(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _part(title: str, chosen: list[int], spent: list[float], correct: list[bool]) -> None:
    """The summary line of the rows ``chosen`` (none when there are none)."""
    if chosen:
        print(_summary(title, [spent[i] for i in chosen], [correct[i] for i in chosen]))


def _summary(name: str, spent: list[float], correct: list[bool] | None = None) -> str:
    ordered = sorted(spent)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    accuracy = "" if correct is None else f"  right {sum(correct) / len(correct):.3f}"
    return (
        f"{name:<40} n={len(spent):>3}  p50 {statistics.median(spent):7.2f} ms  "
        f"p90 {p90:7.2f} ms{accuracy}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--prompts", type=Path, default=ROOT / "tests" / "data" / "multilingual_math.jsonl"
    )
    parser.add_argument(
        "--wide-threads", type=int, default=1, help="wide encoder threads per prompt (0: all)"
    )
    parser.add_argument(
        "--wide-max-tokens", type=int, default=0, help="override the wide token budget (0: keep)"
    )
    parser.add_argument(
        "--compare-budgets",
        default="",
        help="comma-separated token budgets: time the wide encoder alone on the wide prompts "
        "under each, interleaved prompt by prompt (so the machine's load hits all alike)",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    route_set, index = load_state(settings)
    encoder = load_encoder(
        settings.embedding_model, settings.encoder_backend, cache_size=4096, threads=0
    )
    wide = load_wide_encoder(
        settings.wide_model,
        threads=args.wide_threads,
        max_tokens=args.wide_max_tokens or E5_MAX_TOKENS,
        cache_dir=settings.cache_dir,
    )
    engine = build_engine(settings, route_set, index, encoder, LocalState(), wide_encoder=wide)
    router = engine.router
    english = [row for row in _rows(HOLDOUT) if len(row["text"]) < 120]
    others = _rows(args.prompts)
    read = [reading(row["text"]) for row in others]
    wide_rows = [row for row, how in zip(others, read, strict=True) if how is not Reading.PRIMARY]
    sets = {
        "English, short (holdout)": english,
        **{
            f"{how.value} ({title})": [
                row for row, way in zip(others, read, strict=True) if way is how
            ]
            for how, title in (
                (Reading.PRIMARY, "primary encoder alone"),
                (Reading.CHECKED, "primary, wide when unsure"),
                (Reading.BOTH, "both encoders"),
                (Reading.WIDE, "wide encoder decides"),
            )
        },
    }

    async def timed(rows: list[dict[str, str]]) -> tuple[list[float], list[bool]]:
        spent, correct = [], []
        for row in rows:
            started = time.perf_counter()
            decision = await router.decide(RouteRequest(prompt=row["text"], tiebreak=False))
            spent.append((time.perf_counter() - started) * 1000)
            correct.append(decision.route == row["label"])
        return spent, correct

    async def run() -> None:
        await router.decide(RouteRequest(prompt="warm up the encoder", tiebreak=False))
        await router.decide(RouteRequest(prompt="এনকোডার গরম করো", tiebreak=False))
        # Each prompt is decided once; those the wide encoder may read are summed up from those times.
        by_text: dict[str, tuple[float, bool]] = {}
        for name, rows in sets.items():
            spent, correct = await timed(rows)
            print(_summary(f"decide: {name}", spent, correct), flush=True)
            for row, ms, right in zip(rows, spent, correct, strict=True):
                by_text[row["text"]] = (ms, right)
        if not wide_rows:
            return
        spent = [by_text[row["text"]][0] for row in wide_rows]
        correct = [by_text[row["text"]][1] for row in wide_rows]
        print(_summary("decide: all but primary, together", spent, correct))
        for lang in sorted({row["lang"] for row in wide_rows}):
            mine = [i for i, row in enumerate(wide_rows) if row["lang"] == lang]
            for label, keep in (("math", True), ("other", False)):
                chosen = [i for i in mine if (wide_rows[i]["label"] == "math") == keep]
                _part(f"  {lang} {label}", chosen, spent, correct)
        long = [i for i, row in enumerate(wide_rows) if len(row["text"]) > LONG_CHARS]
        _part(f"  all but primary, over {LONG_CHARS} characters", long, spent, correct)

    try:
        asyncio.run(run())
    finally:
        engine.close()
    if wide is not None:
        spent = []
        for row in wide_rows:
            started = time.perf_counter()
            wide.encode([row["text"]])
            spent.append((time.perf_counter() - started) * 1000)
        print(_summary("wide encoder alone (its prompts)", spent))
        tokens = sorted(wide.token_count(wide.clip(row["text"])) for row in wide_rows)
        print(
            f"wide tokens fed (budget {wide.max_tokens}): p50 {statistics.median(tokens):.0f}, "
            f"max {tokens[-1]}"
        )
    if wide is not None and args.compare_budgets:
        _compare_budgets(wide, wide_rows, [int(b) for b in args.compare_budgets.split(",")])
    return 0


def _compare_budgets(wide: E5Encoder, rows: list[dict[str, str]], budgets: list[int]) -> None:
    """The wide encoder alone per token budget, budgets taken in turn for every prompt."""
    spent: dict[int, list[float]] = {budget: [] for budget in budgets}
    for i, row in enumerate(rows):
        for budget in budgets[i % len(budgets) :] + budgets[: i % len(budgets)]:
            wide.max_tokens, wide.max_chars = budget, budget * CHARS_PER_TOKEN_BOUND
            started = time.perf_counter()
            wide.encode([row["text"]])
            spent[budget].append((time.perf_counter() - started) * 1000)
    long = [len(row["text"]) > LONG_CHARS for row in rows]
    for budget, times in spent.items():
        print(
            _summary(
                f"wide alone, {budget} tokens, short",
                [t for t, x in zip(times, long, strict=True) if not x],
            )
        )
        if any(long):
            print(
                _summary(
                    f"wide alone, {budget} tokens, long",
                    [t for t, x in zip(times, long, strict=True) if x],
                )
            )


if __name__ == "__main__":
    sys.exit(main())
