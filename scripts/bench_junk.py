"""Junk detection: generated keyboard mash caught, real prompts spared.

    python scripts/bench_junk.py                              # mash through the router, pool spelling
    python scripts/bench_junk.py --pool-verdicts              # + every pool prompt through the router

Mash (``service/tools/mash.py``, fixed seed) goes through the semantic stage of ``routes/`` and
``index/``: caught means the verdict ``out_of_scope`` (the "no route" class or the spelling
check). Real prompts come from the shared prompt pool (30+ languages); the spelling check is
text only and runs on all of them in a second. ``--pool-verdicts`` embeds the whole pool
(about a minute on 2 cores) and counts the full verdict: that one also sends unserved tasks
(the pool's ``none`` rows) out of scope, on purpose, so it is split by suggested route.
Pool rows that are route utterances are counted apart: the spelling table was fitted on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.api.engine import load_state  # noqa: E402
from service.config.settings import Settings  # noqa: E402
from service.encoding.encoder import load_encoder  # noqa: E402
from service.routing.scoring import Abstain  # noqa: E402
from service.routing.semantic import SemanticStage  # noqa: E402
from service.tools.mash import keyboard_mash  # noqa: E402

POOL = Path("shared") / "data" / "prompts" / "prompts.jsonl"


def default_pool() -> Path:
    """The shared prompt pool: the nearest ``shared`` folder up from the checkout."""
    for folder in ROOT.parents:
        if (folder / POOL).exists():
            return folder / POOL
    return ROOT.parent / POOL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pool", type=Path, default=default_pool())
    parser.add_argument("--mash", type=int, default=1200, help="generated mash prompts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pool-verdicts", action="store_true", help="embed and route the pool")
    args = parser.parse_args(argv)

    settings = Settings()
    route_set, index = load_state(settings)
    encoder = load_encoder(settings.embedding_model, settings.encoder_backend, cache_size=0)
    stage = SemanticStage(route_set, index, encoder)
    try:
        mash = keyboard_mash(args.mash, args.seed)
        texts = [text for _, text in mash]
        verdicts = stage.score_many(texts)
        # The "no route" class alone: the same vectors, without the spelling check.
        by_class = stage.score_vectors(encoder.encode(texts), texts=texts)
        caught: Counter[str] = Counter()
        by_spelling: Counter[str] = Counter()
        classified: Counter[str] = Counter()
        total: Counter[str] = Counter()
        missed = []
        for (kind, text), result, alone in zip(mash, verdicts, by_class, strict=True):
            total[kind] += 1
            by_spelling[kind] += stage.spelling.is_mash(text)
            classified[kind] += alone.abstain is Abstain.OUT_OF_SCOPE
            if result.abstain is Abstain.OUT_OF_SCOPE:
                caught[kind] += 1
            else:
                missed.append(text)
        print(
            f"generated mash (seed {args.seed}): out_of_scope / no-route class alone / "
            "spelling alone / count"
        )
        for kind in [*total, "all"]:
            counts = [
                sum(c.values()) if kind == "all" else c[kind]
                for c in (caught, classified, by_spelling, total)
            ]
            print(f"  {kind:<22}" + "".join(f" {count:>6}" for count in counts))
        print(f"  missed, first 12: {missed[:12]}")

        rows = [json.loads(line) for line in args.pool.read_text(encoding="utf-8").splitlines()]
        utterances = {u for route in route_set.routes for u in route.utterances}
        started = time.perf_counter()
        flagged = [stage.spelling.is_mash(row["text"]) for row in rows]
        spent = (time.perf_counter() - started) / len(rows) * 1e6
        unseen = [f for row, f in zip(rows, flagged, strict=True) if row["text"] not in utterances]
        print(
            f"pool {args.pool}: spelt as mash {sum(flagged)} of {len(rows)} "
            f"({sum(unseen)} of {len(unseen)} not among the route utterances); "
            f"{spent:.1f} us a prompt"
        )
        for row, f in zip(rows, flagged, strict=True):
            if f:
                print(f"  {row['lang']}: {row['text'][:100]!r}")
        if args.pool_verdicts:
            results = stage.score_many([row["text"] for row in rows], batch_size=256)
            out = Counter(
                row["suggested_route"] == "none"
                for row, result in zip(rows, results, strict=True)
                if result.abstain is Abstain.OUT_OF_SCOPE
            )
            print(
                f"pool out_of_scope verdicts: {out[False]} servable prompts, "
                f"{out[True]} of the pool's unserved ('none') prompts"
            )
    finally:
        stage.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
