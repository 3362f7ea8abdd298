"""A counting proxy in front of an OpenAI-compatible server: the same meter for every system.

Each run gets its own path prefix (http://127.0.0.1:PORT/<tag>/v1); the proxy forwards every
request to the upstream /v1 unchanged and records, per chat request, when it started and ended,
its HTTP status, the usage the server reported and a hash of the completion text. LLM calls,
tokens and LLM busy time in the benchmark tables come from here, not from either system's own
counters, so both are counted the same way (retries included). `defaults` are fields every chat
request gets unless it sets them itself (the server's own sampling fields, e.g. llama.cpp's
repeat_penalty), so systems that cannot send them still sample alike.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import httpx


@dataclass
class Call:
    """One chat request as the proxy saw it."""

    tag: str
    start: float
    end: float
    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    completion_sha: str | None = None


@dataclass
class Meter:
    """The calls seen so far, by tag; thread-safe."""

    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call) -> None:
        """Records one call."""
        with self.lock:
            self.calls.append(call)

    def of(self, tag: str) -> list[Call]:
        """Returns the calls made under one tag, in start order."""
        with self.lock:
            return sorted((c for c in self.calls if c.tag == tag), key=lambda c: c.start)


def busy_seconds(calls: list[Call]) -> float:
    """Returns the length of the union of the calls' [start, end] intervals."""
    total, edge = 0.0, float("-inf")
    for c in sorted(calls, key=lambda c: c.start):
        if c.end > edge:
            total += c.end - max(c.start, edge)
            edge = c.end
    return total


def summarise(calls: list[Call]) -> dict[str, Any]:
    """Returns LLM calls, tokens, busy time and distinct completions of one run's calls.

    Tokens count answers the client received; abandoned calls (the client hung up before the
    answer came, status 499) still count as calls and in the busy time.
    """
    answered = [c for c in calls if c.status == 200]
    return {"llm_calls": len(calls), "llm_ok": len(answered),
            "prompt_tokens": sum(c.prompt_tokens for c in answered),
            "completion_tokens": sum(c.completion_tokens for c in answered),
            "tokens": sum(c.prompt_tokens + c.completion_tokens for c in answered),
            "truncated": sum(c.finish_reason == "length" for c in answered),
            "abandoned": sum(c.status == 499 for c in calls),
            "distinct_completions": len({c.completion_sha for c in answered}),
            "llm_busy_s": busy_seconds(calls)}


def with_defaults(body: bytes, defaults: dict[str, Any]) -> bytes:
    """Returns a chat request's JSON body with the default fields it does not set itself."""
    if not defaults:
        return body
    try:
        request = json.loads(body)
    except ValueError:
        return body  # not JSON: the upstream answers it as it would
    if not isinstance(request, dict):
        return body
    return json.dumps(defaults | request).encode()


def _handler(upstream: str, meter: Meter, client: httpx.Client,
             defaults: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            """Logs nothing: the benchmark prints its own table."""

        def _forward(self, method: str) -> None:
            tag, _, rest = self.path.lstrip("/").partition("/")
            if not rest.startswith("v1"):
                self._reply(404, b'{"error": "use http://HOST:PORT/<tag>/v1"}', "application/json")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if method == "POST" and rest.endswith("chat/completions"):
                body = with_defaults(body, defaults)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("content-type", "authorization", "accept")}
            start = time.time()
            try:
                resp = client.request(method, f"{upstream}/{rest[len('v1'):].lstrip('/')}",
                                      content=body, headers=headers)
                status, content, ctype = resp.status_code, resp.content, \
                    resp.headers.get("content-type", "application/json")
            except httpx.HTTPError as exc:
                status, ctype = 502, "application/json"
                content = json.dumps({"error": f"proxy: upstream failed: {exc}"}).encode()
            call = _call(tag, start, time.time(), status, content) \
                if method == "POST" and rest.endswith("chat/completions") else None
            try:
                self._reply(status, content, ctype)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                if call:
                    call.status = 499
            if call:
                meter.add(call)

        def _reply(self, status: int, content: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def do_GET(self) -> None:
            """Forwards a GET (e.g. /v1/models)."""
            self._forward("GET")

        def do_POST(self) -> None:
            """Forwards a POST, metering chat completions."""
            self._forward("POST")

    return Handler


def _call(tag: str, start: float, end: float, status: int, content: bytes) -> Call:
    """Returns the record of one chat request from the upstream's answer."""
    call = Call(tag, start, end, status)
    if status != 200:
        return call
    try:
        body = json.loads(content)
        usage = body.get("usage") or {}
        choice = (body.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") or ""
    except (ValueError, AttributeError, IndexError):
        return call
    call.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    call.completion_tokens = int(usage.get("completion_tokens") or 0)
    call.finish_reason = choice.get("finish_reason")
    call.completion_sha = hashlib.sha256(text.encode()).hexdigest()[:16]
    return call


class CountingProxy:
    """Serves the proxy on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, upstream: str, timeout_s: float = 600.0,
                 defaults: dict[str, Any] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.meter = Meter()
        self._client = httpx.Client(timeout=timeout_s)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0),
                                           _handler(self.upstream, self.meter, self._client,
                                                    defaults or {}))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, tag: str) -> str:
        """Returns the base URL (ending in /v1) that meters requests under tag."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/{tag}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
