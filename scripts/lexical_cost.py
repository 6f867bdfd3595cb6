"""What the classifier's lexical model adds to a decision: hashing a prompt's n-grams and
summing their weights, on its own (no encoder), for short English prompts.

    python scripts/lexical_cost.py [--prompts tests/data/default_routes_holdout.jsonl] [--routes 10]

Each prompt is scored ``--repeat`` times and its fastest time kept, so other processes on a
shared machine inflate the figures less; the p50 and p90 over prompts are printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.index import lexical  # noqa: E402
from service.tools.evaluation import read_examples  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--prompts", type=Path, default=ROOT / "tests" / "data" / "default_routes_holdout.jsonl"
    )
    parser.add_argument("--routes", type=int, default=10, help="columns of the weights")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--max-chars", type=int, default=120, help="what counts as short")
    args = parser.parse_args(argv)
    prompts = [
        example.text
        for example in read_examples(args.prompts)
        if len(example.text) < args.max_chars and example.text.isascii()
    ]
    if not prompts:
        print(f"no short English prompt in {args.prompts}", file=sys.stderr)
        return 2
    weights = np.random.default_rng(0).normal(size=(lexical.BUCKETS, args.routes))
    weights = weights.astype(np.float32)
    fastest = []
    for prompt in prompts:
        spent = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            lexical.scores([prompt], weights)
            spent.append(time.perf_counter() - started)
        fastest.append(min(spent) * 1000)
    chars = float(np.median([len(p) for p in prompts]))
    print(
        f"{len(prompts)} prompts (median {chars:.0f} characters): lexical scoring p50 "
        f"{np.percentile(fastest, 50):.3f} ms, p90 {np.percentile(fastest, 90):.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
