"""Serve semroute with every model (routes, fallbacks, tie-breaker) on the bundled local LLM.

Starts ``scripts/local_llm.py`` on LLM_PORT, waits for it, then runs the service on PORT
with ``SEMROUTE_MODEL_OVERRIDE`` / ``SEMROUTE_LLM_API_BASE`` pointing at it: real routed
answers from ``/complete`` with no API key and no network.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from service.__main__ import main as serve
from service.tools.local_llm import ALIAS

ROOT = Path(__file__).resolve().parent.parent


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the local model server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the local model server did not answer {url} within {timeout:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--llm-port", type=int, default=int(os.environ.get("LLM_PORT", "8081")))
    args = parser.parse_args()
    llm = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "local_llm.py"), "--port", str(args.llm_port)]
    )
    try:
        wait_for(f"http://127.0.0.1:{args.llm_port}/health", llm, timeout=120)
        os.environ["SEMROUTE_MODEL_OVERRIDE"] = f"openai/{ALIAS}"
        os.environ["SEMROUTE_LLM_API_BASE"] = f"http://127.0.0.1:{args.llm_port}/v1"
        return serve(["--host", args.host, "--port", str(args.port)])
    finally:
        llm.terminate()
        try:
            llm.wait(timeout=10)
        except subprocess.TimeoutExpired:
            llm.kill()


if __name__ == "__main__":
    sys.exit(main())
