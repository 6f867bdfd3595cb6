"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose failures are chosen by model name.

The model named in a request picks the behaviour, so one server can stand behind every
model of a fallback chain:

    ok-*        a normal answer naming the model
    json-*      a JSON object as the answer
    slow-*      sleeps ``slow_seconds`` before answering (per-attempt timeouts)
    e500-*      HTTP 500
    e429-*      HTTP 429 with Retry-After: 1
    garbage-*   HTTP 200 with a body that is not JSON
    empty-*     HTTP 200 with empty content
    blank-*     HTTP 200 with whitespace content
    cut-*       HTTP 200, finish_reason "length", two characters of content
    text-*      plain prose (invalid when JSON was asked for)
    drop-*      closes the connection without answering
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _completion(model: str, content: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


class FakeOpenAI:
    """Start with ``with FakeOpenAI() as fake:``; ``fake.api_base`` is what litellm needs."""

    def __init__(self, slow_seconds: float = 5.0):
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": []})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                fake._respond(self, body)

            def _send(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                # The client may have given up already (a timeout test): nothing to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

        self._handler = Handler
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def models_called(self) -> list[str]:
        with self._lock:
            return [str(request.get("model")) for request in self.requests]

    def _respond(self, handler: Any, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        kind = model.split("-", 1)[0]
        if kind == "slow":
            time.sleep(self.slow_seconds)
            handler._send(200, _completion(model, f"slow answer from {model}"))
        elif kind == "e500":
            handler._send(500, {"error": {"message": "internal failure", "type": "server_error"}})
        elif kind == "e429":
            handler._send(
                429,
                {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                {"retry-after": "1"},
            )
        elif kind == "garbage":
            handler._send(200, b'{"choices": [ this is not json')
        elif kind == "empty":
            handler._send(200, _completion(model, ""))
        elif kind == "blank":
            handler._send(200, _completion(model, "   \n "))
        elif kind == "cut":
            handler._send(200, _completion(model, "Th", finish_reason="length"))
        elif kind == "text":
            handler._send(200, _completion(model, "Sure! Here is some prose, not JSON."))
        elif kind == "json":
            handler._send(200, _completion(model, '{"answer": 42}'))
        elif kind == "drop":
            handler.connection.shutdown(socket.SHUT_RDWR)
            handler.connection.close()
        else:
            handler._send(200, _completion(model, f"answer from {model}"))

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
