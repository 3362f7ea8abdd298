"""The LLM endpoint of a benchmark: the embedded SmolLM2 behind llama-cpp-python's OpenAI server
(started and stopped here), the model an endpoint serves, and the [llm] settings of a run on it."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """Returns a TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(n_ctx: int = 4096, threads: int | None = None, log: Path | None = None,
                 alias: str = "SmolLM2-135M-Instruct") -> Iterator[str]:
    """Serves the embedded SmolLM2 GGUF with llama-cpp-python's OpenAI server; yields /v1's URL."""
    from service.llm.models import default_model_path

    port = free_port()
    log = log or Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
           "--model_alias", alias, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(n_ctx)]
    if threads:
        cmd += ["--n_threads", str(threads)]
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited ({proc.returncode}); see {log}: "
                                   f"{log.read_text()[-1500:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/models", timeout=2).is_success:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not answer {url}/models in 120 s; "
                                   f"see {log}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def endpoint(url: str | None, n_ctx: int) -> contextlib.AbstractContextManager[str]:
    """Returns a context yielding the /v1 URL: the given one, or a started embedded server's."""
    return contextlib.nullcontext(url) if url else llama_server(n_ctx)


def evoforge_llm(args: Any) -> dict[str, Any]:
    """Returns the [llm] settings of a run: timeout, concurrency = workers, server context, and
    the sampling temperature when --temperature overrides the problem's."""
    llm: dict[str, Any] = {"timeout_s": args.llm_timeout_s, "concurrency": args.workers}
    if args.temperature is not None:
        llm["temperature"] = args.temperature
    if args.url is None:
        llm["context_window"] = args.n_ctx
    return llm


def served_model(url: str) -> str:
    """Returns the first model id the server lists, or raises naming the URL."""
    try:
        listed = httpx.get(f"{url.rstrip('/')}/models", timeout=10).json().get("data") or []
    except (httpx.HTTPError, ValueError) as exc:
        raise SystemExit(f"cannot list models at {url}/models ({exc}); check --url") from exc
    if not listed:
        raise SystemExit(f"{url}/models lists no model; pass --model")
    return str(listed[0]["id"])


def key_value(text: str) -> tuple[str, Any]:
    """Returns (key, value) of a KEY=VALUE argument, the value read as JSON (else a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. close_code=false)")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value
