"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose failures are chosen by model name.

The model named in a request picks the behaviour, so one server can stand behind every
model of a fallback chain:

    ok-*        a normal answer naming the model
    json-*      a JSON object as the answer
    slow-*      waits ``slow_seconds`` before answering (per-attempt timeouts); a client that
                hangs up first is recorded in ``abandoned``, so a test can tell a call
                cut at its timeout from one waited out, without timing anything
    e500-*      HTTP 500
    e429-*      HTTP 429 with Retry-After: 1
    e400-*      HTTP 400 (the request, not the model, is at fault)
    garbage-*   HTTP 200 with a body that is not JSON
    empty-*     HTTP 200 with empty content
    blank-*     HTTP 200 with whitespace content
    cut-*       HTTP 200, finish_reason "length", two characters of content
    text-*      plain prose (invalid when JSON was asked for)
    drop-*      closes the connection without answering
    halfdrop-*  when streaming: two content chunks, then the connection drops mid-body;
                otherwise the same as drop-*

A request with ``"stream": true`` gets the answer as server-sent events (``data: {...}``
chunks, then ``data: [DONE]``) in a chunked HTTP/1.1 body; failures (e500, e429, slow,
drop) happen before the first byte exactly as without streaming.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
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


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _stream_chunks(model: str, content: str | None, finish_reason: str) -> list[dict[str, Any]]:
    """The chunks of one streamed answer: role, the content in word-sized pieces, the end."""
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    pieces = re.findall(r"\S+\s*|\s+", content or "")
    chunks += [_chunk(model, {"content": piece}) for piece in pieces]
    chunks.append(_chunk(model, {}, finish_reason))
    return chunks


class FakeOpenAI:
    """Start with ``with FakeOpenAI() as fake:``; ``fake.api_base`` is what litellm needs."""

    def __init__(self, slow_seconds: float = 5.0):
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, Any]] = []
        self.abandoned: list[str] = []
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

            def _stream(self, chunks: list[dict[str, Any]], drop_after: int | None = None) -> None:
                """SSE in a chunked body; ``drop_after`` events, then the socket closes."""
                self.protocol_version = "HTTP/1.1"
                self.close_connection = True
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.send_header("connection", "close")
                self.end_headers()
                events = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks]
                if drop_after is None:
                    events.append(b"data: [DONE]\n\n")
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    for event in events[:drop_after]:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                    if drop_after is None:
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.connection.shutdown(socket.SHUT_RDWR)

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

    def reset(self) -> None:
        """Forget the requests and hang-ups of earlier tests."""
        with self._lock:
            self.requests.clear()
            self.abandoned.clear()

    def wait_abandoned(self, models: list[str], timeout: float = 30) -> bool:
        """True once exactly ``models`` (in any order) have hung up on a slow-* answer.

        The server thread notices a hang-up just after the client moves on, so this waits
        for it (at most ``timeout``, which only bounds a broken test)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if sorted(self.abandoned) == sorted(models):
                    return True
            time.sleep(0.02)
        with self._lock:
            return sorted(self.abandoned) == sorted(models)

    def _linger(self, handler: Any, model: str) -> bool:
        """Wait ``slow_seconds`` unless the client hangs up first; True if it did."""
        deadline = time.monotonic() + self.slow_seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([handler.connection], [], [], left)
            if not readable:
                break
            try:
                hung_up = handler.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                hung_up = True
            if hung_up:
                with self._lock:
                    self.abandoned.append(model)
                return True
            time.sleep(min(left, 0.05))  # bytes we do not read: keep waiting
        return False

    def _respond(self, handler: Any, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        kind = model.split("-", 1)[0]
        if body.get("stream") and kind not in {"e500", "e429", "e400", "garbage", "drop"}:
            if kind == "slow" and self._linger(handler, model):
                return
            self._respond_streaming(handler, model, kind)
            return
        if kind == "halfdrop":
            kind = "drop"
        if kind == "slow":
            if not self._linger(handler, model):
                handler._send(200, _completion(model, f"slow answer from {model}"))
        elif kind == "e500":
            handler._send(500, {"error": {"message": "internal failure", "type": "server_error"}})
        elif kind == "e429":
            handler._send(
                429,
                {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                {"retry-after": "1"},
            )
        elif kind == "e400":
            handler._send(
                400, {"error": {"message": "bad request", "type": "invalid_request_error"}}
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

    def _respond_streaming(self, handler: Any, model: str, kind: str) -> None:
        if kind == "halfdrop":
            chunks = _stream_chunks(model, f"partial answer from {model} that never ends", "stop")
            handler._stream(chunks, drop_after=3)
            return
        content, finish_reason = {
            "json": ('{"answer": 42}', "stop"),
            "empty": ("", "stop"),
            "blank": ("   \n ", "stop"),
            "cut": ("Th", "length"),
            "text": ("Sure! Here is some prose, not JSON.", "stop"),
        }.get(kind, (f"answer from {model}", "stop"))
        handler._stream(_stream_chunks(model, content, finish_reason))

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
