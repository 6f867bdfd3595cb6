"""How much time does routing add to a completion? Router time against model time.

    make run-local &                       # or any running semroute with working models
    python scripts/complete_overhead.py --url http://127.0.0.1:8000 --max-tokens 48

For each prompt it sends ``POST /complete`` and splits the server's ``latency_ms`` into the
decision's own ``latency_ms`` and the sum of the model attempts' latencies; the rest is the
service's overhead (validation, serialisation, bookkeeping).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import httpx

PROMPTS = [
    "Write a haiku about autumn",
    "what is 17 * 23?",
    "translate 'good morning' into Spanish",
    "hi there, how are you?",
    "summarize: The city council voted to expand bike lanes downtown after months of debate.",
    "write a python function that reverses a list",
    "why is the sky blue?",
    "extract the dates from: meeting on March 3 and March 9",
    "if all bloops are razzies and all razzies are lazzies, are all bloops lazzies?",
    "write a limerick about a cat",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args(argv)
    router_ms, model_ms, overhead_ms = [], [], []
    with httpx.Client(base_url=args.url, timeout=300) as client:
        for prompt in PROMPTS:
            response = client.post(
                "/complete", json={"prompt": prompt, "max_tokens": args.max_tokens}
            )
            body = response.json()
            if response.status_code != 200:
                print(f"{response.status_code} for {prompt!r}: {body['error']['message']}")
                continue
            decision = body["decision"]
            model = sum(attempt["latency_ms"] for attempt in body["attempts"])
            router_ms.append(decision["latency_ms"])
            model_ms.append(model)
            overhead_ms.append(body["latency_ms"] - model)
            print(
                f"{decision['route']:<17} {decision['method']:<9} router {decision['latency_ms']:8.1f} ms"
                f"  model {model:8.1f} ms  total {body['latency_ms']:8.1f} ms"
            )
    if not model_ms:
        return 1
    print(
        f"median: router {statistics.median(router_ms):.1f} ms, model {statistics.median(model_ms):.1f} ms,"
        f" total minus model {statistics.median(overhead_ms):.1f} ms"
        f" ({statistics.median(overhead_ms) / statistics.median(model_ms):.1%} of model time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
