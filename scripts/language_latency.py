"""Decision latency by path: English, covered languages, and the wide path.

    python scripts/language_latency.py [--prompts tests/data/multilingual_math.jsonl]

Loads routes/ and index/ as the service does (SEMROUTE_* settings, the wide encoder
included), then times ``Router.decide`` one prompt at a time, each prompt once so the encoder
cache never flatters a figure: English prompts of ``tests/data/default_routes_holdout.jsonl``
(short: under 120 characters), the prompts of the file that keep the primary encoder, and
those that take the wide path (``service/encoding/scripts.py``). It also prints the wide
encoder's own time on the wide prompts. The machine is usually shared: compare rows of one run.
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
from service.encoding.e5 import load_wide_encoder  # noqa: E402
from service.encoding.encoder import load_encoder  # noqa: E402
from service.encoding.scripts import needs_wide  # noqa: E402
from service.routing.types import RouteRequest  # noqa: E402
from service.state.local import LocalState  # noqa: E402

HOLDOUT = ROOT / "tests" / "data" / "default_routes_holdout.jsonl"


def _texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def _summary(name: str, spent: list[float]) -> str:
    ordered = sorted(spent)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (
        f"{name:<34} n={len(spent):>3}  p50 {statistics.median(spent):7.2f} ms  p90 {p90:7.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--prompts", type=Path, default=ROOT / "tests" / "data" / "multilingual_math.jsonl"
    )
    parser.add_argument(
        "--wide-threads", type=int, default=1, help="wide encoder threads per prompt (0: all)"
    )
    args = parser.parse_args(argv)
    settings = Settings()
    route_set, index = load_state(settings)
    encoder = load_encoder(
        settings.embedding_model, settings.encoder_backend, cache_size=4096, threads=0
    )
    wide = load_wide_encoder(settings.wide_model, threads=args.wide_threads)
    engine = build_engine(settings, route_set, index, encoder, LocalState(), wide_encoder=wide)
    router = engine.router
    english = [text for text in _texts(HOLDOUT) if len(text) < 120]
    others = _texts(args.prompts)
    sets = {
        "English, short (holdout)": english,
        "covered languages (primary only)": [t for t in others if not needs_wide(t)],
        "wide path (primary + wide)": [t for t in others if needs_wide(t)],
    }

    async def timed(prompts: list[str]) -> list[float]:
        spent = []
        for prompt in prompts:
            started = time.perf_counter()
            await router.decide(RouteRequest(prompt=prompt, tiebreak=False))
            spent.append((time.perf_counter() - started) * 1000)
        return spent

    async def run() -> None:
        await router.decide(RouteRequest(prompt="warm up the encoder", tiebreak=False))
        await router.decide(RouteRequest(prompt="এনকোডার গরম করো", tiebreak=False))
        for name, prompts in sets.items():
            print(_summary(f"decide: {name}", await timed(prompts)), flush=True)

    try:
        asyncio.run(run())
    finally:
        engine.close()
    if wide is not None:
        spent = []
        for text in sets["wide path (primary + wide)"]:
            started = time.perf_counter()
            wide.encode([text])
            spent.append((time.perf_counter() - started) * 1000)
        print(_summary("wide encoder alone (wide prompts)", spent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
