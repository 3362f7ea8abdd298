"""The one interface every LLM backend implements: generate(prompts, n, sampling) -> completions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from service.llm.bandit import ModelBandit


class LLMError(RuntimeError):
    """A request failed in a way that retrying it will not fix (bad request, too long)."""


class LLMUnavailable(RuntimeError):
    """The backend cannot be reached (server down, timeouts after retries); the run should pause."""


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str  # "system" | "user" | "assistant"
    content: str


class DecodingRule(Protocol):
    """What an answer's text must keep to while it is decoded, as states over its characters."""

    name: str
    special: str  # text holding none of these characters is never refused inside a guarded state
    grammar: str  # the rule as GBNF, for servers that constrain decoding themselves

    def start(self) -> Any:
        """Returns the state before the answer's first character."""

    def feed(self, state: Any, text: str) -> Any | None:
        """Returns the state after text, or None when text breaks the rule."""

    def guarded(self, state: Any) -> bool:
        """Returns True where tokens may be refused."""

    def may_end(self, state: Any) -> bool:
        """Returns True when the answer may end here."""

    def key(self, state: Any) -> Any:
        """Returns a hashable state that refuses exactly what state refuses (masks are cached)."""


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters for one request."""

    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int | None = None
    # Ends the answer early once it returns True on the text so far, cut at its last line end
    # (e.g. "the code block closed"): the finish_reason is then 'stop'. Backends that decode in
    # this process (llamacpp, transformers) honour it; the others generate to their own end.
    stop_when: Callable[[str], bool] | None = None
    # A rule the answer's text must keep to while it is decoded (service/edits/closable.py's
    # PYTHON_BLOCK: the code block stays closable); tokens that break it are never sampled. The
    # llamacpp backend (on a GGUF with a chat template) and the transformers backend honour it
    # (service/llm/token_guard.py); the others ignore it.
    guard: DecodingRule | None = None


@dataclass
class Completion:
    """One completion with its token usage; finish_reason 'length' means it was cut off."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    model: str
    adapter: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        """Returns True when the model stopped at max_tokens rather than by itself."""
        return self.finish_reason == "length"


class AdapterSupport(StrEnum):
    """What a backend's load_adapter does with a trained LoRA adapter."""

    NONE = "none"      # it cannot use adapters (load_adapter raises ValueError)
    LOCAL = "local"    # it loads the adapter's files into this process (llama.cpp, transformers)
    SERVER = "server"  # it asks its LLM server to load them (vLLM runtime LoRA); the server
    #                    must see the folder, and a trainer may have loaded it there already


class LLMBackend(Protocol):
    """An LLM that writes mutations: llamacpp, openai (vLLM & co.), transformers, an ensemble, and
    the scripted double of the tests. Besides generating, a backend says what else it can do."""

    name: str
    model: str
    context_window: int
    max_concurrency: int
    small_model: bool  # True: prefer full rewrites over SEARCH/REPLACE diffs
    adapters: AdapterSupport  # whether and how load_adapter works
    adapter: str | None  # the LoRA adapter requests use now; None: the base model
    bandit: ModelBandit | None  # an ensemble's member selector (fed by the search aids); else None

    def load_adapter(self, name: str | None, folder: Path | None) -> None:
        """Makes later requests use adapter `name` from folder (folder None: already loaded
        where the backend serves from; name None: back to the base model)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Returns the token count of text in this model (an estimate where exactness is dear)."""
        ...

    async def generate(self, prompts: list[list[Message]], n: int,
                       sampling: Sampling) -> list[list[Completion]]:
        """Returns n completions for each prompt, in prompt order."""
        ...

    async def aclose(self) -> None:
        """Releases the backend's resources."""
        ...
