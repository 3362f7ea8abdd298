"""The OpenAI-compatible backend against a real server: llama-cpp-python's, on SmolLM2."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from service.config import ConfigError, LLMConfig, build_run_config
from service.llm.base import LLMError, LLMUnavailable, Message, Sampling
from service.llm.factory import make_backend
from service.llm.models import small_model_from_name
from service.llm.openai_compat import OpenAICompatBackend
from service.settings import Settings
from tests.conftest import SERVER_CTX, free_port
from tests.service.llm.replay import ReplayServer, error

HELLO = [Message("user", "Say hello in one short sentence.")]




@pytest.fixture
def server_url(llama_server_url: str) -> str:
    """Returns the /v1 URL of the shared llama.cpp server on SmolLM2."""
    return llama_server_url


def backend(url: str, **cfg) -> OpenAICompatBackend:
    """Returns a backend for url (a fresh one per test: its HTTP client belongs to one loop)."""
    return make_backend(LLMConfig(backend="openai", url=url, **cfg), Settings())


def words(n: int) -> list[Message]:
    """Returns a prompt of about n + 31 tokens for SmolLM2."""
    return [Message("user", "word " * n)]


async def generate_then_close(b: OpenAICompatBackend, prompts, n: int, sampling: Sampling):
    """Returns b.generate(...) and closes b's client in the same event loop."""
    try:
        return await b.generate(prompts, n, sampling)
    finally:
        await b.aclose()


@pytest.mark.llm
def test_model_name_and_size_default_to_what_the_server_lists(server_url):
    listed = httpx.get(f"{server_url}/models").json()["data"][0]["id"]
    b = backend(server_url)
    assert b.model == listed and b.model.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert b.small_model and b.context_window == 4096 and b.max_concurrency == 4
    assert backend(server_url, model="other", context_window=1000).context_window == 1000


@pytest.mark.llm
def test_n_choices_are_topped_up_when_the_server_ignores_n(server_url):
    b = backend(server_url)
    [cs] = asyncio.run(generate_then_close(b, [HELLO], 3, Sampling(max_tokens=16, seed=5)))
    assert len(cs) == 3 and b.request_count == 3  # one request for n=3, answered once, + 2
    for c in cs:
        assert c.text.strip() and c.finish_reason in ("stop", "length")
        assert c.prompt_tokens > 10 and 0 < c.completion_tokens <= 16 and c.latency_s > 0
        assert c.model == b.model and c.adapter is None
    assert len({c.extra["seed"] for c in cs}) == 3 and len({c.text for c in cs}) > 1


@pytest.mark.llm
def test_llama_cpp_server_reads_its_repeat_penalty_from_extra_body(server_url):
    # its default is 1.1; sent as 1.1 the text is the default's, sent as 1.0 it is another (the
    # first request warms the server's prompt cache: a cold prompt samples slightly otherwise)
    prompt = [Message("user", "Write a Python function that sums a list of lists.")]

    def text(extra_body: dict | None) -> str:
        b = backend(server_url, extra_body=extra_body)
        [[c]] = asyncio.run(generate_then_close(b, [prompt], 1, Sampling(max_tokens=96, seed=3)))
        return c.text

    text(None)
    default = text(None)
    assert text({"repeat_penalty": 1.1}) == default and text({"repeat_penalty": 1.0}) != default


@pytest.mark.llm
def test_context_overflow_raises_llm_error_without_retrying(server_url):
    b = backend(server_url, retries=3)
    start = time.perf_counter()
    with pytest.raises(LLMError, match="maximum context length is 2048"):
        asyncio.run(generate_then_close(b, [words(3000)], 1, Sampling(max_tokens=64)))
    assert b.request_count == 1 and time.perf_counter() - start < 30
    assert b.context_window == SERVER_CTX  # learned from the refusal


def test_stopped_server_raises_llm_unavailable_quickly():
    url = f"http://127.0.0.1:{free_port()}/v1"
    b = OpenAICompatBackend(LLMConfig(backend="openai", url=url, model="m", retries=2),
                            backoff_s=0.05)
    start = time.perf_counter()
    with pytest.raises(LLMUnavailable, match=rf"{url} is unreachable.*after 3 attempts.*--llm-url"):
        asyncio.run(generate_then_close(b, [HELLO], 1, Sampling(max_tokens=8)))
    assert b.request_count == 3 and time.perf_counter() - start < 5


def test_stopped_server_without_a_model_name_is_unavailable_at_generate():
    b = backend(f"http://127.0.0.1:{free_port()}/v1")
    assert b.model == ""
    with pytest.raises(LLMUnavailable, match="unreachable or lists no model"):
        asyncio.run(generate_then_close(b, [HELLO], 1, Sampling(max_tokens=8)))


@pytest.mark.parametrize(("status", "expected", "hits"),
                         [(503, LLMUnavailable, 3), (429, LLMUnavailable, 3), (404, LLMError, 1)])
def test_server_errors_are_retried_and_client_errors_are_not(status, expected, hits):
    server = ReplayServer((status, error(f"status {status} from the test server")))
    try:
        b = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url, model="m", retries=2),
                                backoff_s=0.01)
        with pytest.raises(expected, match=f"HTTP {status}"):
            asyncio.run(generate_then_close(b, [HELLO], 1, Sampling(max_tokens=8)))
        assert len(server.requests) == hits
    finally:
        server.stop()


def test_vllm_max_tokens_refusal_is_resent_once_with_what_fits():
    # vLLM refuses prompt + max_tokens > max_model_len (llama.cpp's server lowers it itself).
    refusal = error("'max_tokens' or 'max_completion_tokens' is too large: 512. This model's "
                    "maximum context length is 2048 tokens and your request has 1990 input "
                    "tokens (512 > 2048 - 1990).")
    answer = {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "finish_reason": "length",
                           "message": {"role": "assistant", "content": "def f(): pass"}}],
              "usage": {"prompt_tokens": 1990, "completion_tokens": 58, "total_tokens": 2048}}
    server = ReplayServer((400, refusal), (200, answer), (400, refusal))
    try:
        b = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url, model="m", retries=0))

        async def twice():
            first = await b.generate([HELLO], 1, Sampling(max_tokens=512))
            with pytest.raises(LLMError, match="is too large"):  # no resend that cannot help
                await b.generate([HELLO], 1, Sampling(max_tokens=58))
            await b.aclose()
            return first

        [[c]] = asyncio.run(twice())
        assert [r["max_tokens"] for r in server.requests] == [512, 58, 58]
        assert c.truncated and c.completion_tokens == 58 and c.extra["max_tokens"] == 58
        assert b.context_window == 2048
        with pytest.raises(LLMUnavailable, match="closed"):
            asyncio.run(b.generate([HELLO], 1, Sampling(max_tokens=58)))
    finally:
        server.stop()


def test_extra_body_fields_reach_the_server_and_may_not_replace_what_evoforge_sends():
    answer = {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "x = 1"}}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
    server = ReplayServer((200, answer))
    try:
        b = OpenAICompatBackend(LLMConfig(backend="openai", url=server.url, model="m",
                                          extra_body={"repeat_penalty": 1.0, "top_k": 40}))
        asyncio.run(generate_then_close(b, [HELLO], 1, Sampling(max_tokens=8, temperature=0.3)))
        [sent] = server.requests
        assert sent["repeat_penalty"] == 1.0 and sent["top_k"] == 40
        assert sent["temperature"] == 0.3 and sent["max_tokens"] == 8
    finally:
        server.stop()
    with pytest.raises(ConfigError, match=r"'llm\.extra_body': extra_body sets max_tokens, "
                                          r"temperature, which evoforge sends itself"):
        build_run_config({"llm": {"backend": "openai", "url": server.url,
                                  "extra_body": {"temperature": 2, "max_tokens": 9}}})


def test_missing_url_is_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError, match=r"llm\.url is required"):
        make_backend(LLMConfig(backend="openai"), Settings())


def test_token_count_is_a_character_estimate():
    b = OpenAICompatBackend(LLMConfig(backend="openai", url="http://127.0.0.1:9/v1", model="m"))
    assert b.count_tokens("") == 0 and b.count_tokens("abcdefg") == 2 and b.count_tokens("a") == 1


@pytest.mark.parametrize(("name", "small"), [
    ("SmolLM2-135M-Instruct.Q4_1", True), ("HuggingFaceTB/SmolLM2-360M-Instruct", True),
    ("Qwen/Qwen2.5-0.5B-Instruct", True), ("Qwen2.5-Coder-1.5B", True), ("smollm2-1.7b", True),
    ("meta-llama/Llama-3.1-8B-Instruct", False), ("Qwen2.5-Coder-32B-Instruct", False),
    ("gpt-4o-mini", False), ("/models/converted", False)])
def test_small_model_is_recognised_from_the_name(name, small):
    assert small_model_from_name(name) is small
