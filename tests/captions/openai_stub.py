"""A small OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks ``GET /v1/models`` and ``POST /v1/chat/completions`` in the OpenAI
JSON format (what vLLM's server answers) and has knobs for the faults an LLM
client must survive: dropped connections, 5xx/429/4xx answers, slow answers,
bodies that are not JSON, and servers that reject ``response_format``. Each
request is served on its own thread, so the server sees real concurrency and
records the most requests it held at once.

    with serve_openai(fail_first=2, fail_status=500) as stub:
        client = AsyncOpenAI(base_url=stub.base_url, api_key="EMPTY")
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

ORGAN_WORDS = ("thyroid", "breast", "liver", "lung")


def default_reply(body: dict[str, Any]) -> str:
    """A bland caption that names the organ mentioned in the last user message."""
    text = " ".join(
        str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"
    ).lower()
    organ = next((o for o in ORGAN_WORDS if re.search(rf"\b{o}\b", text)), "organ")
    return f"Ultrasound image of the {organ} acquired for seed {body.get('seed')} review."


@dataclass
class StubServer:
    """Knobs and counters of one running stub; change knobs between runs freely."""

    models: list[str] = field(default_factory=lambda: ["stub-model"])
    reply: Callable[[dict[str, Any]], str] = default_reply
    fail_first: int = 0
    fail_status: int = 500
    retry_after: float | None = None
    drop_first: int = 0
    junk_first: int = 0
    delay: float = 0.0
    reject_response_format: bool = False
    finish_reason: str = "stop"
    requests: list[dict[str, Any]] = field(default_factory=list)
    max_in_flight: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def count(self) -> int:
        """Chat completion requests received (any outcome)."""
        return len(self.requests)

    @property
    def seeds(self) -> list[int | None]:
        return [r.get("seed") for r in self.requests]

    def reset(self) -> None:
        """Clear counters and faults; keep models and reply."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0
        self.fail_first = self.drop_first = self.junk_first = 0
        self.delay = 0.0
        self.reject_response_format = False
        self.retry_after = None
        self.finish_reason = "stop"

    def _enter(self, body: dict[str, Any]) -> int:
        with self._lock:
            self.requests.append(body)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return len(self.requests) - 1

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _error(status: int, message: str) -> dict[str, Any]:
    kind = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError"}
    return {
        "error": {
            "message": message,
            "type": kind.get(status, "InternalServerError"),
            "param": None,
            "code": status,
        }
    }


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, status: int, payload: Any, headers: dict[str, str] | None = None
        ) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                self._send(404, _error(404, f"no route {self.path}"))
                return
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "stub"}
                for m in stub.models
            ]
            self._send(200, {"object": "list", "data": data})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, _error(404, f"no route {self.path}"))
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(400, _error(400, "body is not JSON"))
                return
            n = stub._enter(body)
            try:
                self._complete(n, body)
            finally:
                stub._leave()

        def _complete(self, n: int, body: dict[str, Any]) -> None:
            if n < stub.drop_first:
                self.close_connection = True
                return
            if n < stub.fail_first:
                headers = {}
                if stub.retry_after is not None:
                    headers["Retry-After"] = str(stub.retry_after)
                self._send(stub.fail_status, _error(stub.fail_status, "stub failure"), headers)
                return
            if body.get("model") not in stub.models:
                self._send(404, _error(404, f"The model `{body.get('model')}` does not exist."))
                return
            if stub.reject_response_format and body.get("response_format"):
                message = "response_format json_schema is not supported by this server"
                self._send(400, _error(400, message))
                return
            if stub.delay:
                time.sleep(stub.delay)
            if n < stub.junk_first:
                self._send(200, b"<html>502 Bad Gateway from a proxy</html> {not json")
                return
            text = stub.reply(body)
            if body.get("response_format"):
                text = json.dumps({"caption": text})
            self._send(
                200,
                {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": stub.finish_reason,
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                },
            )

    return Handler


class _Server(ThreadingHTTPServer):
    # Room for a client's whole burst of connections (concurrency 64 and more).
    request_queue_size = 256


@contextmanager
def serve_openai(**knobs: Any) -> Iterator[StubServer]:
    """Run a stub on a free port of 127.0.0.1 in a background thread."""
    stub = StubServer(**knobs)
    server = _Server((stub.host, 0), _handler(stub))
    server.daemon_threads = True
    server.block_on_close = False
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def openai_stub() -> Iterator[StubServer]:
    """A fresh stub server per test."""
    with serve_openai() as stub:
        yield stub
