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

First, the state stores alone: CPU microseconds per request of what the service's event
loop does for its state, in process and with Redis (see ``state_cost``).

Every load phase gets prompts no earlier phase sent, so the encoder cache flatters none.
Prints req/s and latency per round, the median per load, and redis/local as a ratio. On a
busy shared machine req/s swings with the neighbours' load; the CPU time the service (and
redis-server) spent per request, read from /proc, is the steadier figure: on an idle
machine /route is CPU-bound, so its throughput follows the CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[tuple[str, int]]:
    """Debian's redis-server on a free loopback port, without persistence; yields URL, pid."""
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
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


async def state_cost(url: str, requests: int = 20_000) -> dict[str, float]:
    """CPU microseconds this process spends per request on state, by store and request kind.

    ``plain``: what every /route does (remember its decision; with Redis, batched writes
    behind it). ``conversation``: a conversation's read and write. CPU time, not wall time:
    the round trip's wait costs the event loop nothing, its client work does.
    """
    from service.state.local import LocalState
    from service.state.redis_state import RedisState
    from service.state.store import Remembered, StateStore

    async def plain(store: StateStore) -> float:
        started = time.process_time()
        for number in range(requests):
            store.remember_decision(f"d{number}", Remembered("coding", "openai/gpt-4.1"))
            if number % 16 == 15:
                await asyncio.sleep(0)  # requests take turns on the loop; flushes run between
        if isinstance(store, RedisState):
            await store.flush()
        return (time.process_time() - started) * 1e6 / requests

    async def conversation(store: StateStore) -> float:
        started = time.process_time()
        for number in range(requests // 10):
            await store.conversation_route(f"c{number % 1000}")
            await store.keep_conversation_route(f"c{number % 1000}", "coding")
        return (time.process_time() - started) * 1e6 / (requests // 10)

    local, shared = LocalState(), RedisState(url, LocalState(), prefix="bench:")
    try:
        return {
            "local_plain_us": await plain(local),
            "redis_plain_us": await plain(shared),
            "local_conversation_us": await conversation(local),
            "redis_conversation_us": await conversation(shared),
        }
    finally:
        await shared.close()


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
            redis_server(Path(folder)) as (url, redis_pid),
            server(command, {}, "/readyz") as local,
            server(command, {"SEMROUTE_REDIS_URL": url}, "/readyz") as shared,
        ):
            cost = asyncio.run(state_cost(url))
            print(
                "state cost per request, CPU µs of the service's event loop: "
                + ", ".join(f"{k.removesuffix('_us')} {v:.1f}" for k, v in cost.items()),
                flush=True,
            )
            targets = {"local": (local, 0), "redis": (shared, 0)}
            targets["redis+conversation"] = (shared, CONVERSATIONS)
            phase = 0
            for number in range(args.rounds):
                figures = {}
                for name in LOADS:
                    running, conversations = targets[name]
                    batch = prompts[phase * per_phase : (phase + 1) * per_phase]
                    phase += 1
                    before = cpu_seconds(running["pid"]), cpu_seconds(redis_pid)
                    figure = load(
                        running["url"], batch, args.concurrency, args.seconds, client, conversations
                    )
                    requests = max(figure["requests"], 1)
                    figure["cpu_ms"] = (cpu_seconds(running["pid"]) - before[0]) * 1000 / requests
                    figure["redis_cpu_ms"] = (cpu_seconds(redis_pid) - before[1]) * 1000 / requests
                    figures[name] = figure
                rounds.append(figures)
                print(
                    f"round {number + 1}: "
                    + "  ".join(
                        f"{n} {f['rps']:.0f} req/s (p50 {f['p50_ms']:.1f} ms, "
                        f"p99 {f['p99_ms']:.1f} ms, errors {f['errors']:.0f}, "
                        f"cpu {f['cpu_ms']:.2f} + redis {f['redis_cpu_ms']:.3f} ms/req)"
                        for n, f in figures.items()
                    ),
                    flush=True,
                )
    median = {name: statistics.median(r[name]["rps"] for r in rounds) for name in LOADS}
    cpu = {name: statistics.median(r[name]["cpu_ms"] for r in rounds) for name in LOADS}
    redis_cpu = {name: statistics.median(r[name]["redis_cpu_ms"] for r in rounds) for name in LOADS}
    summary: dict[str, Any] = {
        "client": client,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "index": index,
        "median_rps": median,
        "median_cpu_ms_per_request": cpu,
        "median_redis_cpu_ms_per_request": redis_cpu,
        "redis_vs_local": median["redis"] / median["local"],
        "conversation_vs_local": median["redis+conversation"] / median["local"],
        "state_cost_us": cost,
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
    print(
        "median service CPU ms per request: "
        + ", ".join(f"{n} {v:.2f}" for n, v in cpu.items())
        + "; redis-server: "
        + ", ".join(f"{n} {v:.3f}" for n, v in redis_cpu.items())
    )
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
