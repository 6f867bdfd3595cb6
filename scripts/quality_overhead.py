"""What a learned quality estimate adds to one routing decision (the prompt's vector reused).

python scripts/quality_overhead.py [--n 2000]

Two routers over the same index of routes/: one as built (a tiered route's model chosen by
the complexity estimate), one with a quality estimator for the tiered route's models
attached (fitted here on synthetic outcomes: its speed does not depend on what it learned).
Prompts repeat, so the encoder cache serves them and the figures are the decision's own
work. Prints the median and p95 decision time of each and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time

import numpy as np

from service.config.routes import load_route_set
from service.config.settings import Settings
from service.encoding.encoder import load_encoder
from service.index import quality
from service.index.store import check_index, load_index
from service.routing.router import Router
from service.routing.types import RouteRequest

PROMPTS = [
    "who was the first emperor of rome and how did he take power",
    "why is the sky blue",
    "explain how vaccines train the immune system",
    "what caused the fall of the berlin wall",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def time_decisions(router: Router, n: int) -> tuple[list[float], int]:
    """Decision times in ms, and how many decisions carried a learned quality estimate."""
    for prompt in PROMPTS:  # warm the encoder cache
        await router.decide(RouteRequest(prompt=prompt))
    times = []
    estimated = 0
    for i in range(n):
        request = RouteRequest(prompt=PROMPTS[i % len(PROMPTS)])
        started = time.perf_counter()
        decision = await router.decide(request)
        times.append((time.perf_counter() - started) * 1000)
        shown = decision.model_candidates or []
        estimated += any(candidate.expected_quality is not None for candidate in shown)
    return times, estimated


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args(argv)

    route_set = load_route_set(settings.routes_dir)
    tiered = [route for route in route_set.routes if len(route.models) > 1]
    if not tiered:
        print("no route of routes/ lists tiered models: nothing to choose", file=sys.stderr)
        return 2
    encoder = load_encoder(
        settings.embedding_model,
        settings.encoder_backend,
        cache_size=4096,
        cache_dir=settings.cache_dir,
    )
    index = load_index(
        settings.index_dir,
        check_index(settings.index_dir, route_set, encoder.model_id, settings.wide_model),
    )
    models = [entry.model for entry in tiered[0].models]
    rng = np.random.default_rng(0)
    texts = [f"synthetic prompt {i}" for i in range(200)]
    vectors = encoder.encode(texts)
    scores = (rng.random((len(texts), len(models))) < 0.7).astype(float)
    estimator = quality.fit(vectors, texts, scores, models)
    routers = {
        "without estimate (complexity tier)": Router(route_set, index, encoder),
        "with learned estimate": Router(
            route_set, dataclasses.replace(index, quality=estimator), encoder
        ),
    }
    medians = {}
    try:
        for name, router in routers.items():
            times, estimated = asyncio.run(time_decisions(router, args.n))
            medians[name] = statistics.median(times)
            print(
                f"{name:<36} median {medians[name]:.3f} ms, p95 {percentile(times, 95):.3f} ms "
                f"({args.n} decisions, {estimated} with a learned estimate)"
            )
    finally:
        for router in routers.values():
            router.close()
    assert estimator is not None
    vector = vectors[0]
    # Its cost grows with the prompt's words up to quality.MAX_WORDS: a long paste as well.
    long_prompt = " ".join(PROMPTS * 100)
    for name, text in (("the prompts above", PROMPTS[0]), ("a long prompt", long_prompt)):
        started = time.perf_counter()
        for _ in range(args.n):
            estimator.expected_one(vector, text)
        alone = (time.perf_counter() - started) / args.n * 1000
        print(f"estimate alone, {name} ({len(text)} characters): {alone:.3f} ms")
    without, with_estimate = medians.values()
    print(
        f"median decision difference {with_estimate - without:+.3f} ms "
        "(the learned estimate replaces the complexity one)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
