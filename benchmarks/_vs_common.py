"""Shared parts of vs_openevolve.py and suite.py: the LLM server, strict re-scoring, curves."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
# the console script, not `python -m service.cli.app`: run as __main__, the CLI module and the command
# modules it registers would import two copies of it
EVOFORGE = str(Path(sys.executable).parent / "evoforge")


def exit_on_sigterm() -> None:
    """Turns SIGTERM into SystemExit, so the started server and runs are stopped on the way out."""
    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


def run_group(cmd: list[str], timeout_s: float, **kwargs: Any) -> subprocess.CompletedProcess:
    """Runs cmd in its own process group; on timeout or interrupt stops the whole group.

    A run's own children (OpenEvolve's worker pool, evoforge's evaluations) must not outlive it.
    """
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except BaseException:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def free_port() -> int:
    """Returns a TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(n_ctx: int = 4096, threads: int | None = None, log: Path | None = None,
                 alias: str = "SmolLM2-135M-Instruct") -> Iterator[str]:
    """Serves the embedded SmolLM2 GGUF with llama-cpp-python's OpenAI server; yields its /v1 URL."""
    from service.llm.models import default_model_path

    port = free_port()
    log = log or Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
           "--model_alias", alias, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
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
                raise RuntimeError(f"llama_cpp.server did not answer {url}/models in 120 s; see {log}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def evoforge_llm(args: Any) -> dict[str, Any]:
    """Returns the [llm] settings of the harness: timeout, concurrency = workers, server context."""
    llm: dict[str, Any] = {"timeout_s": args.llm_timeout_s, "concurrency": args.workers}
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


def strict_score(problem: Path, code: str) -> dict[str, Any]:
    """Re-scores code with `evoforge eval` (our sandbox and the problem's strict verifier)."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
    try:
        proc = subprocess.run([EVOFORGE, "eval", str(problem), f.name,
                               "--json"], capture_output=True, text=True, check=False,
                              cwd=ROOT, timeout=900)
    finally:
        os.unlink(f.name)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"status": "error", "score": None,
                "error": f"evoforge eval printed no JSON ({proc.returncode}): {proc.stderr[-500:]}"}
    result = json.loads(lines[-1])
    return {"status": result.get("status"), "score": result.get("score"),
            "error": result.get("error"), "tier": result.get("tier") or result.get("verification")}


def best_curve(points: list[tuple[int, float | None]], length: int,
               maximize: bool) -> list[float | None]:
    """Returns best-so-far after each iteration 0..length from (iteration, score) points."""
    by_iter: dict[int, float] = {}
    for it, score in points:
        if score is None:
            continue
        old = by_iter.get(it)
        if old is None or (score > old if maximize else score < old):
            by_iter[it] = score
    best: float | None = None
    curve: list[float | None] = []
    for it in range(length + 1):
        s = by_iter.get(it)
        if s is not None and (best is None or (s > best if maximize else s < best)):
            best = s
        curve.append(best)
    return curve


def time_curve(points: list[tuple[float, float | None]], maximize: bool) -> list[list[float]]:
    """Returns [t, best-so-far] steps from (seconds since start, score) points."""
    best: float | None = None
    steps: list[list[float]] = []
    for t, score in sorted((p for p in points if p[1] is not None), key=lambda p: p[0]):
        if best is None or (score > best if maximize else score < best):
            best = score
            steps.append([t, best])
    return steps
