"""The code guard reaches remote servers as a grammar (service/edits/closable_grammar.py):
llama.cpp's server keeps every answer closable with it; vLLM gets it in structured_outputs; a
server that refuses it is asked again without, and the user's own extra_body field wins."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.quality.remote_guard import REWRITE, broken
from service.config import LLMConfig
from service.edits.closable import PYTHON_BLOCK
from service.llm.base import Completion, Sampling
from service.llm.openai_compat import OpenAICompatBackend
from tests.service.llm.replay import ReplayServer, error
from tests.service.llm.test_openai_compat import backend, generate_then_close

ANSWER = {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "```python\nx = 1\n```"}}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
VLLM = [{"id": "m", "object": "model", "owned_by": "vllm", "max_model_len": 8192}]


@pytest.mark.llm
def test_llama_cpp_server_keeps_every_answer_closable_under_the_guard_grammar(llama_server_url):
    # at a high temperature the small model mismatches brackets in some of these answers; with
    # the grammar, none of the same seeds' answers does
    def answers(guarded: bool) -> list[Completion]:
        sampling = Sampling(temperature=1.2, max_tokens=120, seed=1,
                            guard=PYTHON_BLOCK if guarded else None)
        b = backend(llama_server_url)
        assert b.grammar_field == ("grammar",)  # llama-cpp-python's server lists owner "me"
        return asyncio.run(generate_then_close(b, [REWRITE], 6, sampling))[0]

    unguarded, guarded = answers(False), answers(True)
    assert any(map(broken, unguarded)) and not any(map(broken, guarded))
    assert all(c.extra.get("grammar") for c in guarded)
    assert not any("grammar" in c.extra for c in unguarded)


def ask(b: OpenAICompatBackend, times: int = 1) -> list[Completion]:
    """Returns the completions of `times` guarded requests, one after the other."""
    async def run() -> list[Completion]:
        try:
            return [(await b.generate([REWRITE], 1, Sampling(max_tokens=8, guard=PYTHON_BLOCK)))
                    [0][0] for _ in range(times)]
        finally:
            await b.aclose()

    return asyncio.run(run())


def test_vllm_gets_the_grammar_in_structured_outputs_and_an_unguarded_request_none():
    server = ReplayServer((200, ANSWER), models=VLLM)
    try:
        b = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url))
        assert b.model == "m" and b.grammar_field == ("structured_outputs", "grammar")
        [c] = ask(b)
        b = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url))
        asyncio.run(generate_then_close(b, [REWRITE], 1, Sampling(max_tokens=8)))
        guarded, plain = server.requests
        assert guarded["structured_outputs"] == {"grammar": PYTHON_BLOCK.grammar}
        assert "grammar" not in guarded and c.extra["grammar"] is True
        assert "structured_outputs" not in plain
    finally:
        server.stop()


def test_a_server_that_refuses_the_grammar_is_asked_again_without_it_and_never_again(caplog):
    refusal = error("Grammar is not supported by the structured outputs backend")
    server = ReplayServer((400, refusal), (200, ANSWER), models=VLLM)
    try:
        b = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url, retries=0))
        first, second = ask(b, times=2)
        assert ["structured_outputs" in r for r in server.requests] == [True, False, False]
        assert first.text == second.text == "```python\nx = 1\n```"
        assert "grammar" not in first.extra and b.grammar_field is None
        assert "refused the code guard's grammar (HTTP 400" in caplog.text
    finally:
        server.stop()


def test_a_context_length_refusal_keeps_the_grammar_and_is_refitted():
    refusal = error("'max_tokens' or 'max_completion_tokens' is too large: 512. This model's "
                    "maximum context length is 2048 tokens and your request has 1990 input "
                    "tokens (512 > 2048 - 1990).")
    server = ReplayServer((400, refusal), (200, ANSWER), models=VLLM)
    try:
        b = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url, retries=0))
        [[c]] = asyncio.run(generate_then_close(b, [REWRITE], 1, Sampling(
            max_tokens=512, guard=PYTHON_BLOCK)))
        assert ["structured_outputs" in r for r in server.requests] == [True, True]
        assert [r["max_tokens"] for r in server.requests] == [512, 58]
        assert c.extra["grammar"] is True and b.grammar_field is not None
    finally:
        server.stop()


@pytest.mark.parametrize("models", [None, [{"id": "m", "owned_by": "openai"}]])
def test_servers_that_take_no_known_grammar_get_none(models):
    server = ReplayServer((200, ANSWER), models=models)
    try:
        b = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url, model="m"))
        ask(b)
        [sent] = server.requests
        assert not {"grammar", "structured_outputs"} & set(sent)
    finally:
        server.stop()


def test_the_users_own_structured_outputs_win_over_the_guard():
    own = {"structured_outputs": {"regex": "x = [0-9]+"}}
    server = ReplayServer((200, ANSWER), models=VLLM)
    try:
        ask(OpenAICompatBackend(LLMConfig(backend="openai", url=server.url, extra_body=own)))
        [sent] = server.requests
        assert sent["structured_outputs"] == own["structured_outputs"]
    finally:
        server.stop()
