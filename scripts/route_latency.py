"""Measure ``POST /route`` latency (and accuracy, when labels are known) against a server.

    python scripts/route_latency.py --url http://127.0.0.1:8000 --n 200
    python scripts/route_latency.py --prompts a.jsonl b.jsonl   # {"text", "label"} per line

Prompts are sent one at a time over one keep-alive connection; each prompt is sent once, so
the encoder cache does not flatter the figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

from service.tools.evaluation import read_examples

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROMPTS = [
    ROOT / "tests" / "data" / "default_routes_holdout.jsonl",
    ROOT / "routes" / "calibration.jsonl",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--prompts", type=Path, nargs="+", default=DEFAULT_PROMPTS)
    parser.add_argument("--n", type=int, default=200, help="number of prompts to send")
    parser.add_argument("--no-tiebreak", action="store_true", help="semantic decisions only")
    args = parser.parse_args(argv)

    examples = [example for path in args.prompts for example in read_examples(path)][: args.n]
    latencies: list[float] = []
    server_ms: list[float] = []
    correct = labelled = 0
    with httpx.Client(base_url=args.url, timeout=30) as client:
        client.post("/route", json={"prompt": "warm-up request"}).raise_for_status()
        for example in examples:
            started = time.perf_counter()
            response = client.post(
                "/route", json={"prompt": example.text, "tiebreak": not args.no_tiebreak}
            )
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            decision = response.json()
            server_ms.append(decision["latency_ms"])
            if example.label is not None:
                labelled += 1
                correct += decision["route"] == example.label
    print(f"{len(latencies)} prompts to {args.url}/route")
    print(
        f"client latency ms: p50 {percentile(latencies, 50):.1f}  p99 {percentile(latencies, 99):.1f}"
        f"  mean {statistics.fmean(latencies):.1f}"
    )
    print(
        f"server decision ms: p50 {percentile(server_ms, 50):.1f}  p99 {percentile(server_ms, 99):.1f}"
    )
    if labelled:
        print(f"routed to the labelled route: {correct}/{labelled} = {correct / labelled:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
