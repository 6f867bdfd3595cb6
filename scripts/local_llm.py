"""Serve the bundled local model (SmolLM2-135M) over the OpenAI API on 127.0.0.1.

python scripts/local_llm.py --port 8081
# litellm: model="openai/smollm2", api_base="http://127.0.0.1:8081/v1"
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from service.tools.local_llm import ALIAS, LocalModelError, start_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--parallel", type=int, default=2, help="concurrent request slots")
    args = parser.parse_args(argv)
    try:
        server = start_server(args.port, args.host, args.parallel)
    except LocalModelError as error:
        print(f"local model cannot start: {error}", file=sys.stderr)
        return 2
    print(f"local model '{ALIAS}' serving at {server.listening_address}/v1", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
