"""The openai backend loads an adapter through vLLM's runtime-LoRA API, then names it per request.

The server here is a small recording HTTP server speaking the three vLLM routes involved (a
protocol check; docs/rl.md has the recipe for a real vLLM)."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from service.config import LLMConfig
from service.llm.base import LLMError, Message, Sampling
from service.llm.openai_compat import OpenAICompatBackend


class Recorder(BaseHTTPRequestHandler):
    """Answers /v1/models, /v1/load_lora_adapter and /v1/chat/completions like vLLM."""

    requests: ClassVar[list[tuple[str, dict]]] = []
    refuse_lora = False

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"data": [{"id": "base-135M", "max_model_len": 2048}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.path, body))
        if self.path.endswith("/load_lora_adapter"):
            if self.refuse_lora:
                self._send(400, "The model does not support LoRA")
            else:
                self._send(200, "Success: LoRA adapter loaded")
            return
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0,
                         "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "ok"}}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                                   "total_tokens": 4}})


@pytest.fixture
def server() -> str:
    Recorder.requests, Recorder.refuse_lora = [], False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_adapter_is_loaded_by_path_and_then_asked_for_by_name(server: str, tmp_path: Path) -> None:
    llm = OpenAICompatBackend(LLMConfig(backend="openai", url=server))

    async def ask() -> str | None:
        out = await llm.generate([[Message("user", "hi")]], 1, Sampling(max_tokens=8))
        return out[0][0].adapter

    assert asyncio.run(ask()) is None
    llm.load_adapter("run1-v2", tmp_path)
    assert asyncio.run(ask()) == "run1-v2"
    llm.load_adapter(None, None)
    assert asyncio.run(ask()) is None
    paths = [(p, b.get("model") or b.get("lora_name")) for p, b in Recorder.requests]
    assert paths == [("/v1/chat/completions", "base-135M"), ("/v1/load_lora_adapter", "run1-v2"),
                     ("/v1/chat/completions", "run1-v2"), ("/v1/chat/completions", "base-135M")]
    assert Recorder.requests[1][1] == {"lora_name": "run1-v2", "lora_path": str(tmp_path),
                                       "load_inplace": True}


def test_a_server_without_runtime_lora_is_explained(server: str, tmp_path: Path) -> None:
    Recorder.refuse_lora = True
    llm = OpenAICompatBackend(LLMConfig(backend="openai", url=server))
    with pytest.raises(LLMError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING=True --enable-lora"):
        llm.load_adapter("run1-v1", tmp_path)
    assert llm.adapter is None
