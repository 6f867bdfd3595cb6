"""``/route`` throughput with the shared state in Redis, against the same service without it.

    python scripts/bench_shared_state.py                 # 3 rounds of 10 s per load, wrk if present
    python scripts/bench_shared_state.py --seconds 20 --rounds 5 --report shared.json

Starts a ``redis-server`` on a free loopback port and two ``python -m service`` processes on
the same snapshot of ``routes/`` and ``index/``: one without Redis, one with
``SEMROUTE_REDIS_URL``. Each round runs three loads, one after the other, so that drift on a
shared machine hits all three alike:

- ``local``: no Redis;
- ``redis``: Redis configured, plain requests (the hot path makes no Redis call; decisions
  are written behind the requests in batches);
- ``redis+conversation``: every request carries one of 1,000 conversation ids (a Redis read
  and a scripted write per request).

Every load phase gets prompts no earlier phase sent, so the encoder cache flatters none.
Prints req/s and latency per round, the median per load, and redis/local as a ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from bench import free_port, load, prepare_state, server, short_prompts

LOADS = ("local", "redis", "redis+conversation")
CONVERSATIONS = 1000


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Debian's redis-server on a free loopback port, without persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is missing: apt-get install redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(200):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per load phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--client", choices=["auto", "httpx", "wrk"], default="auto")
    parser.add_argument("--report", type=Path, help="also write the figures here (JSON)")
    args = parser.parse_args(argv)
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")

    phases = args.rounds * len(LOADS)
    per_phase = int(args.seconds * 1500)  # more than a phase sends at the fastest seen
    prompts = short_prompts(phases * per_phase, seed=4)
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="semroute-shared-") as folder:
        index = prepare_state(Path(folder), "onnx")
        command = [sys.executable, "-m", "service", "--log-level", "warning"]
        with (
            redis_server(Path(folder)) as url,
            server(command, {}, "/readyz") as local,
            server(command, {"SEMROUTE_REDIS_URL": url}, "/readyz") as shared,
        ):
            targets = {"local": (local, 0), "redis": (shared, 0)}
            targets["redis+conversation"] = (shared, CONVERSATIONS)
            phase = 0
            for number in range(args.rounds):
                figures = {}
                for name in LOADS:
                    running, conversations = targets[name]
                    batch = prompts[phase * per_phase : (phase + 1) * per_phase]
                    phase += 1
                    figures[name] = load(
                        running["url"], batch, args.concurrency, args.seconds, client, conversations
                    )
                rounds.append(figures)
                print(
                    f"round {number + 1}: "
                    + "  ".join(
                        f"{n} {f['rps']:.0f} req/s (p50 {f['p50_ms']:.1f} ms, "
                        f"p99 {f['p99_ms']:.1f} ms, errors {f['errors']:.0f})"
                        for n, f in figures.items()
                    ),
                    flush=True,
                )
    median = {name: statistics.median(r[name]["rps"] for r in rounds) for name in LOADS}
    summary: dict[str, Any] = {
        "client": client,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "index": index,
        "median_rps": median,
        "redis_vs_local": median["redis"] / median["local"],
        "conversation_vs_local": median["redis+conversation"] / median["local"],
        "rounds": rounds,
    }
    print(
        f"median req/s over {args.rounds} rounds ({client}, {args.concurrency} clients): "
        + ", ".join(f"{n} {v:.0f}" for n, v in median.items())
    )
    print(
        f"redis / local = {summary['redis_vs_local']:.3f}; "
        f"redis+conversation / local = {summary['conversation_vs_local']:.3f}"
    )
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
