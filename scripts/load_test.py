"""Bounded load test of ``POST /route``: a fixed request rate for a fixed time, on loopback.

    python scripts/load_test.py --serve --rate 20 --minutes 10       # starts its own server
    python scripts/load_test.py --url http://127.0.0.1:8000 --pid 1234 --rate 20 --minutes 10

Requests are started on a fixed schedule (open loop), at most ``--concurrency`` at a time;
a request that cannot start on time because every slot is busy is counted as ``late``, so
an overloaded server shows up in the report instead of silently lowering the rate. The
report gives errors by kind, latency percentiles and the server's resident memory (VmRSS
from /proc) after warm-up and at the end. The script refuses any host but loopback and
always stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PROMPTS = [
    "write a python function that merges two sorted lists",
    "give me a recipe for banana bread",
    "translate 'good morning' into German",
    "summarise this paragraph about the French revolution in two sentences",
    "what is the integral of x squared from 0 to 3",
    "hello, how are you today?",
    "write a short poem about the sea at night",
    "extract every date and amount from this invoice text",
    "why is the sky blue?",
    "if all bloops are razzies and some razzies are lazzies, are some bloops lazzies?",
]


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB, from /proc (None when unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    late: int = 0

    @property
    def errors(self) -> int:
        return sum(n for kind, n in self.outcomes.items() if kind != "200")


async def one_request(client: httpx.AsyncClient, body: dict[str, object], tally: Tally) -> None:
    started = time.perf_counter()
    try:
        response = await client.post("/route", json=body)
        tally.outcomes[str(response.status_code)] += 1
    except httpx.HTTPError as error:
        tally.outcomes[type(error).__name__] += 1
    tally.latencies_ms.append((time.perf_counter() - started) * 1000)


async def run_load(
    url: str,
    rate: float,
    seconds: float,
    concurrency: int,
    tiebreak: bool,
    pid: int | None,
    warmup_s: float,
) -> dict[str, object]:
    slots = asyncio.Semaphore(concurrency)
    tally = Tally()
    rng = random.Random(7)
    tasks: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        slots.release()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    rss_start = rss_warm = None
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        rss_start = rss_kib(pid) if pid else None
        loop = asyncio.get_running_loop()
        began = loop.time()
        total = int(rate * seconds)
        for n in range(total):
            await asyncio.sleep(max(0.0, began + n / rate - loop.time()))
            if loop.time() - began >= seconds:
                break  # an overloaded server does not stretch the run past its time
            if rss_warm is None and pid and loop.time() - began >= warmup_s:
                rss_warm = rss_kib(pid)
            if slots.locked():
                tally.late += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slots.acquire(), max(0.0, began + seconds - loop.time()))
            if loop.time() - began >= seconds:
                break
            # A random suffix keeps the encoder cache from answering every repeat.
            prompt = f"{rng.choice(PROMPTS)} (#{rng.randrange(1_000_000)})"
            task = asyncio.create_task(
                one_request(client, {"prompt": prompt, "tiebreak": tiebreak}, tally)
            )
            tasks.add(task)
            task.add_done_callback(finished)
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        elapsed = loop.time() - began
    rss_end = rss_kib(pid) if pid else None
    lat = tally.latencies_ms
    report: dict[str, object] = {
        "requests": len(lat),
        "elapsed_s": round(elapsed, 1),
        "achieved_rate": round(len(lat) / elapsed, 2) if elapsed else 0.0,
        "errors": tally.errors,
        "outcomes": dict(tally.outcomes),
        "late_starts": tally.late,
    }
    if lat:
        report["latency_ms"] = {
            "p50": round(percentile(lat, 50), 2),
            "p90": round(percentile(lat, 90), 2),
            "p99": round(percentile(lat, 99), 2),
            "max": round(max(lat), 2),
        }
    if pid:
        base = rss_warm or rss_start
        report["rss_kib"] = {"start": rss_start, "after_warmup": rss_warm, "end": rss_end}
        if base and rss_end:
            report["rss_growth_pct_after_warmup"] = round((rss_end - base) / base * 100, 2)
    return report


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    """``python -m service`` on loopback, from the repo's routes/ and index/."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMROUTE_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True")
    return subprocess.Popen(
        [sys.executable, "-m", "service", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )


def wait_ready(url: str, process: subprocess.Popen[bytes] | None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"{url} was not ready within {timeout:g}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", default=None, help="a running server (loopback only)")
    parser.add_argument("--serve", action="store_true", help="start the server as a subprocess")
    parser.add_argument("--pid", type=int, default=None, help="server process, for its RSS")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at most")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before RSS baseline")
    parser.add_argument("--tiebreak", action="store_true", help="let the LLM tie-breaker run")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0 or args.concurrency < 1:
        parser.error("--rate and --minutes must be positive, --concurrency at least 1")
    if args.minutes > 120:
        parser.error("--minutes is capped at 120")

    process = None
    if args.serve:
        url = f"http://127.0.0.1:{free_port()}"
        process = start_server(int(urlparse(url).port or 0))
        pid = process.pid
    elif args.url:
        url, pid = args.url.rstrip("/"), args.pid
    else:
        parser.error("give --url (and --pid) of a running server, or --serve")
    if urlparse(url).hostname not in LOOPBACK:
        parser.error("the load test only targets loopback addresses")
    try:
        wait_ready(url, process)
        report = asyncio.run(
            run_load(
                url,
                args.rate,
                args.minutes * 60,
                args.concurrency,
                args.tiebreak,
                pid,
                args.warmup,
            )
        )
    finally:
        if process is not None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            if process.poll() is None:
                process.kill()
    print(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
