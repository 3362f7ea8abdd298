"""The transformers backend on the real SmolLM2 (converted from the shipped GGUF): stop_when and
the decoding rule steer each sequence of a batch, as they steer the llamacpp backend's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from benchmarks.quality.remote_guard import REWRITE, broken
from service.config import LLMConfig
from service.edits.closable import PYTHON_BLOCK
from service.llm.base import Completion, Message, Sampling
from service.llm.hf import TransformersBackend
from service.settings import Settings

FRUITS = [Message("user", "List ten fruits, one per line.")]


@pytest.fixture(scope="module")
def backend() -> Iterator[TransformersBackend]:
    """Returns one transformers backend shared by this module."""
    b = TransformersBackend(LLMConfig(backend="transformers"), Settings())
    yield b
    asyncio.run(b.aclose())


def generate(backend: TransformersBackend, prompt: list[Message], n: int,
             sampling: Sampling) -> list[Completion]:
    """Returns n completions of one prompt."""
    return asyncio.run(backend.generate([prompt], n, sampling))[0]


def test_each_sequence_ends_where_stop_when_says_its_answer_is_done(
        backend: TransformersBackend) -> None:
    full = generate(backend, FRUITS, 2, Sampling(max_tokens=40, seed=2))
    asked: list[str] = []

    def first_line(text: str) -> bool:
        asked.append(text)
        return "\n" in text

    cut = generate(backend, FRUITS, 2, Sampling(max_tokens=40, seed=2, stop_when=first_line))
    for whole, part in zip(full, cut, strict=True):
        assert "\n" in whole.text.strip() and whole.text.startswith(part.text)
        assert part.finish_reason == "stop" and part.completion_tokens < whole.completion_tokens
        assert any(part.text.startswith(text) for text in asked)
    assert len(asked) == 2 and all(text.endswith("\n") for text in asked)  # once per sequence


def test_a_python_block_guard_keeps_every_sequence_s_brackets_and_strings_closable(
        backend: TransformersBackend) -> None:
    # at a high temperature the small model mismatches brackets in some of these answers; with
    # the guard, none of the same seed's answers does
    def answers(guarded: bool) -> list[Completion]:
        return generate(backend, REWRITE, 8, Sampling(
            temperature=1.2, max_tokens=120, seed=3, guard=PYTHON_BLOCK if guarded else None))

    assert any(broken(answer) for answer in answers(False))
    assert not any(broken(answer) for answer in answers(True))
