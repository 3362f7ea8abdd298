"""A deterministic stand-in LLM for tests of the loop: answers come from a script, not a model."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from service.config import ConfigError, LLMConfig
from service.llm.base import AdapterSupport, Completion, Message, Sampling

Script = list[str] | Callable[[list[Message], int], str]
CHARS_PER_TOKEN = 4
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


class ScriptedBackend:
    """Answers from a list (cycled) or a function of (messages, k), k counting completions from 0.

    Token counts are len(text) // 4; an answer longer than max_tokens is cut there and marked
    finish_reason "length", as a real model's would be. Every prompt received is kept in .prompts.
    """

    name = "scripted"
    adapters = AdapterSupport.NONE
    bandit = None

    def __init__(self, answers: Script, small_model: bool = True, context_window: int = 4096,
                 model: str = "scripted", max_concurrency: int = 4) -> None:
        if isinstance(answers, list) and not answers:
            raise ValueError("ScriptedBackend needs at least one answer")
        self._answers = answers
        self.small_model = small_model
        self.context_window = context_window
        self.model = model
        self.max_concurrency = max_concurrency
        self.prompts: list[list[Message]] = []
        self.calls = 0  # completions produced so far
        self.adapter: str | None = None

    def count_tokens(self, text: str) -> int:
        """Returns len(text) // 4, the test double's token measure."""
        return len(text) // CHARS_PER_TOKEN

    async def generate(self, prompts: list[list[Message]], n: int,
                       sampling: Sampling) -> list[list[Completion]]:
        """Returns n scripted completions for each prompt, in prompt order."""
        results = []
        for messages in prompts:
            self.prompts.append(messages)
            prompt_tokens = sum(self.count_tokens(m.content) for m in messages)
            results.append([self._complete(messages, prompt_tokens, sampling) for _ in range(n)])
        return results

    def _complete(self, messages: list[Message], prompt_tokens: int,
                  sampling: Sampling) -> Completion:
        """Returns the next scripted answer as a Completion."""
        k, self.calls = self.calls, self.calls + 1
        if callable(self._answers):
            text = self._answers(messages, k)
        else:
            text = self._answers[k % len(self._answers)]
        finish = "stop"
        if self.count_tokens(text) > sampling.max_tokens:
            text, finish = text[:sampling.max_tokens * CHARS_PER_TOKEN], "length"
        return Completion(text=text, finish_reason=finish, prompt_tokens=prompt_tokens,
                          completion_tokens=self.count_tokens(text), latency_s=1e-3,
                          model=self.model, extra={"k": k})

    def load_adapter(self, name: str | None, folder: Path | None) -> None:
        """Refuses: a script has no weights (subclasses in tests may record the call)."""
        raise ValueError("the scripted backend cannot load LoRA adapters")

    async def aclose(self) -> None:
        """Does nothing: a script holds no resources."""


def echo_parent(messages: list[Message], k: int) -> str:
    """Returns the prompt's program (the first code block, preferring one with an EVOLVE-BLOCK)
    unchanged, as a full rewrite in a python fence."""
    text = next((m.content for m in reversed(messages) if m.role == "user"), "")
    blocks = _FENCE.findall(text)
    code = next((b for b in blocks if "EVOLVE-BLOCK-START" in b), blocks[0] if blocks else text)
    return f"```python\n{code.rstrip()}\n```\n"


def scripted_from_config(cfg: LLMConfig) -> ScriptedBackend:
    """Returns a ScriptedBackend: answers from the JSON list at cfg.model, else echo_parent."""
    if not cfg.model:
        return ScriptedBackend(echo_parent, context_window=cfg.context_window or 4096)
    path = Path(cfg.model)
    try:
        answers = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"llm.model: scripted answers '{path}' unreadable ({exc}); give a "
                          "JSON file holding a list of answer strings, or leave llm.model unset"
                          ) from exc
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise ConfigError(f"llm.model: '{path}' must hold a non-empty JSON list of strings")
    return ScriptedBackend(answers, context_window=cfg.context_window or 4096, model=path.stem)
