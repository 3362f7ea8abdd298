"""The scripted test double: deterministic answers with realistic bookkeeping."""

from __future__ import annotations

import asyncio
import json

import pytest

from service.config import ConfigError, LLMConfig
from service.llm.base import Message, Sampling
from service.llm.factory import make_backend
from service.llm.scripted import ScriptedBackend
from service.settings import Settings

PARENT = "# EVOLVE-BLOCK-START\ndef solve(x):\n    return x + 1\n# EVOLVE-BLOCK-END"
PROMPT = [Message("system", "You improve programs."),
          Message("user", "Example format:\n```python\nprint(1)\n```\n"
                          f"Current program:\n```python\n{PARENT}\n```\nRewrite it.")]


def generate(b: ScriptedBackend, prompts, n: int, max_tokens: int = 512):
    """Returns b.generate(prompts, n) run to completion."""
    return asyncio.run(b.generate(prompts, n, Sampling(max_tokens=max_tokens)))


def test_answers_cycle_in_order_across_prompts_and_completions():
    b = ScriptedBackend(["a" * 40, "b" * 8, "c"])
    out = generate(b, [PROMPT, [Message("user", "x" * 20)]], 2)
    assert [[c.text for c in cs] for cs in out] == [["a" * 40, "b" * 8], ["c", "a" * 40]]
    assert [c.completion_tokens for c in out[0]] == [10, 2] and out[1][0].completion_tokens == 0
    assert out[1][0].prompt_tokens == 5 and all(c.finish_reason == "stop" for cs in out for c in cs)
    assert b.prompts == [PROMPT, [Message("user", "x" * 20)]] and b.calls == 4


def test_a_function_script_gets_the_messages_and_the_completion_index():
    b = ScriptedBackend(lambda messages, k: f"{len(messages)}:{k}", small_model=False)
    out = generate(b, [PROMPT], 3)
    assert [c.text for c in out[0]] == ["2:0", "2:1", "2:2"] and b.small_model is False


def test_answer_longer_than_max_tokens_is_cut_and_marked_length():
    [[c]] = generate(ScriptedBackend(["x" * 400]), [PROMPT], 1, max_tokens=20)
    assert c.truncated and c.text == "x" * 80 and c.completion_tokens == 20


def test_empty_script_is_refused():
    with pytest.raises(ValueError, match="at least one answer"):
        ScriptedBackend([])


def test_make_backend_scripted_echoes_the_parent_program_as_a_rewrite():
    b = make_backend(LLMConfig(backend="scripted"), Settings())
    [[c]] = generate(b, [PROMPT], 1)
    assert c.text == f"```python\n{PARENT}\n```\n" and b.small_model


def test_make_backend_scripted_reads_answers_from_a_json_file(tmp_path):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(["one", "two"]))
    b = make_backend(LLMConfig(backend="scripted", model=str(path)), Settings())
    assert [c.text for c in generate(b, [PROMPT], 3)[0]] == ["one", "two", "one"]
    assert b.model == "answers"


@pytest.mark.parametrize("content", ["not json", "[]", '{"a": 1}', "[1, 2]"])
def test_bad_answers_file_is_a_config_error_naming_it(tmp_path, content):
    path = tmp_path / "answers.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"answers\.json"):
        make_backend(LLMConfig(backend="scripted", model=str(path)), Settings())
