"""Any OpenAI-compatible chat server (vLLM in production, llama.cpp's server in tests)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import re
import time
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI

from service.config import ConfigError, LLMConfig
from service.llm.base import (
    AdapterSupport,
    Completion,
    DecodingRule,
    LLMError,
    LLMUnavailable,
    Message,
    Sampling,
)
from service.llm.models import small_model_from_name

DEFAULT_CONTEXT = 4096
DEFAULT_CONCURRENCY = 4
MIN_COMPLETION_TOKENS = 32
CHARS_PER_TOKEN = 3.5  # count_tokens estimate: no tokenizer is loaded for a remote model
_SEED_STRIDE = 1_000_003
_CONTEXT_LIMIT = re.compile(r"maximum context length is (\d+)")
_PROMPT_SIZE = (re.compile(r"(\d+) in the messages"), re.compile(r"has (\d+) input tokens"))
# How a server that constrains decoding takes a GBNF grammar, by the owner its /models lists:
# vLLM (structured_outputs), llama.cpp's server ("llamacpp") and llama-cpp-python's ("me").
GRAMMAR_FIELDS = {"vllm": ("structured_outputs", "grammar"), "llamacpp": ("grammar",),
                  "me": ("grammar",)}
log = logging.getLogger("evoforge.llm")


class OpenAICompatBackend:
    """Chat completions over HTTP with our own retries, backoff and concurrency limit.

    Retried (with exponential backoff and jitter): connection errors, timeouts, 408, 429, 5xx;
    after cfg.retries retries the server counts as down (LLMUnavailable). Other 4xx answers
    raise LLMError at once; a context-length refusal is resent once with max_tokens lowered to
    fit when the server's message states the prompt size and enough room is left.

    A request's decoding rule (Sampling.guard, llm.close_code) goes to servers that take a
    grammar (GRAMMAR_FIELDS) as its GBNF; one that refuses it (4xx) gets the request again
    without, and no grammar after that. Other servers decode unguarded.
    """

    name = "openai"
    adapters = AdapterSupport.SERVER  # vLLM runtime LoRA: the server loads the folder
    bandit = None

    def __init__(self, cfg: LLMConfig, seed: int = 0, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0) -> None:
        if not cfg.url:
            raise ConfigError("llm.url is required for llm.backend = 'openai'; set it (or "
                              "--llm-url) to the server's base URL, e.g. http://127.0.0.1:8000/v1")
        self.url = cfg.url.rstrip("/")
        self._cfg = cfg
        self._backoff = (backoff_s, max_backoff_s)
        self._api_key = os.environ.get(cfg.api_key_env) or "none"
        self.max_concurrency = cfg.concurrency or DEFAULT_CONCURRENCY
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._client = AsyncOpenAI(base_url=self.url, api_key=self._api_key,
                                   timeout=cfg.timeout_s, max_retries=0)
        self._rng = random.Random(seed)
        self.adapter: str | None = None  # a LoRA adapter the server knows by name; None: base model
        self.request_count = 0  # HTTP chat requests sent, retries included
        self.model = cfg.model or ""
        self.context_window = cfg.context_window or DEFAULT_CONTEXT
        self.small_model = small_model_from_name(self.model)
        self.grammar_field: tuple[str, ...] | None = None  # where this server takes a grammar
        self._discover()

    def _discover(self) -> bool:
        """Fills in model and context window from GET {url}/models; returns False if unreachable."""
        try:
            resp = httpx.get(f"{self.url}/models", timeout=min(self._cfg.timeout_s, 5.0),
                             headers={"Authorization": f"Bearer {self._api_key}"})
            body = resp.json() if resp.is_success else {}
            listed: list[dict[str, Any]] = body.get("data") or []
        except (httpx.HTTPError, ValueError, AttributeError):
            return False
        if not self.model and listed:
            self.model = str(listed[0].get("id", ""))
            self.small_model = small_model_from_name(self.model)
        for entry in listed:
            if entry.get("id") != self.model:
                continue
            if entry.get("max_model_len") and not self._cfg.context_window:
                self.context_window = int(entry["max_model_len"])
            self.grammar_field = GRAMMAR_FIELDS.get(str(entry.get("owned_by", "")))
        return bool(self.model)

    def count_tokens(self, text: str) -> int:
        """Returns an estimate (characters / 3.5, rounded up): no tokenizer is loaded here."""
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    async def generate(self, prompts: list[list[Message]], n: int,
                       sampling: Sampling) -> list[list[Completion]]:
        """Returns n completions for each prompt, in prompt order."""
        if self._client.is_closed():
            raise LLMUnavailable(f"the backend for {self.url} was closed; make a new one")
        if not self.model and not await asyncio.to_thread(self._discover):
            raise LLMUnavailable(f"LLM server at {self.url} is unreachable or lists no model; "
                                 "start it, fix --llm-url, or name the model with llm.model")
        bases = [sampling.seed if sampling.seed is not None else self._rng.randrange(2**31)
                 for _ in prompts]
        jobs = [self._complete_prompt(p, n, sampling, seed)
                for p, seed in zip(prompts, bases, strict=True)]
        return list(await asyncio.gather(*jobs))

    async def _complete_prompt(self, messages: list[Message], n: int, sampling: Sampling,
                               base_seed: int) -> list[Completion]:
        """Returns n completions for one prompt, topping up when the server returns fewer."""
        first = await self._request(messages, n, sampling, base_seed)
        completions = first[:n]
        if not completions:
            raise LLMError(f"LLM server at {self.url} returned no choices for model {self.model}")
        # Servers that ignore n (llama.cpp's) answer once: ask again, one choice per request.
        seeds = [(base_seed + j * _SEED_STRIDE) % 2**31 for j in range(len(completions), n)]
        extra = await asyncio.gather(*(self._request(messages, 1, sampling, s) for s in seeds))
        for more in extra:
            if not more:
                raise LLMError(f"LLM server at {self.url} returned no choices for {self.model}")
            completions.append(more[0])
        return completions

    async def _request(self, messages: list[Message], n: int, sampling: Sampling,
                       seed: int) -> list[Completion]:
        """Returns the choices of one chat request, retrying what a retry can fix."""
        max_tokens, refitted, failures = sampling.max_tokens, False, 0
        while True:
            grammar = self._grammar(sampling.guard)
            try:
                return await self._send(messages, n, sampling, seed, max_tokens, grammar)
            except openai.APIStatusError as exc:
                if exc.status_code not in (408, 429) and exc.status_code < 500:
                    if grammar and exc.status_code in (400, 422) \
                            and not _CONTEXT_LIMIT.search(str(exc)):  # the grammar, not the size
                        log.warning("LLM server at %s refused the code guard's grammar (HTTP %s: "
                                    "%s); its answers are decoded unguarded from now on",
                                    self.url, exc.status_code, str(exc)[:300])
                        self.grammar_field = None
                        continue  # the same request without the grammar, not a retry
                    fitted = None if refitted else self._refit(str(exc))
                    if fitted is None or fitted >= max_tokens:
                        raise LLMError(self._refusal(exc)) from exc
                    max_tokens, refitted = fitted, True
                    continue  # a corrected request, not a retry
                last: Exception = exc
            except openai.APIConnectionError as exc:  # includes timeouts
                last = exc
            failures += 1
            if failures > self._cfg.retries:
                raise LLMUnavailable(f"LLM server at {self.url} is unreachable: {_describe(last)}"
                                     f" (after {failures} attempts); start it or fix --llm-url")
            await asyncio.sleep(self._delay(failures - 1))

    def _grammar(self, guard: DecodingRule | None) -> dict[str, Any]:
        """Returns the request fields that give this server guard's grammar ({} when it takes
        none, or the user's llm.extra_body sets that field: theirs wins)."""
        if guard is None or self.grammar_field is None:
            return {}
        field, *inside = self.grammar_field
        if field in (self._cfg.extra_body or {}):
            return {}
        return {field: {inside[0]: guard.grammar}} if inside else {field: guard.grammar}

    async def _send(self, messages: list[Message], n: int, sampling: Sampling, seed: int,
                    max_tokens: int, grammar: dict[str, Any]) -> list[Completion]:
        """Returns the choices of one HTTP chat request (with the grammar fields), as
        Completions."""
        model = self.adapter or self.model
        async with self._slots:
            self.request_count += 1
            start = time.perf_counter()
            resp = await self._client.chat.completions.create(
                model=model, messages=[{"role": m.role, "content": m.content} for m in messages],
                n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                max_tokens=max_tokens, seed=seed,
                extra_body={**grammar, **(self._cfg.extra_body or {})} or None)
            latency = time.perf_counter() - start
        texts = [c.message.content or "" for c in resp.choices]
        prompt_tokens = resp.usage.prompt_tokens if resp.usage else 0
        total = resp.usage.completion_tokens if resp.usage else sum(map(self.count_tokens, texts))
        shares = _split_tokens(total, [self.count_tokens(t) for t in texts])
        return [Completion(text=text, finish_reason=choice.finish_reason or "stop",
                           prompt_tokens=prompt_tokens, completion_tokens=share,
                           latency_s=latency, model=self.model, adapter=self.adapter,
                           extra={"seed": seed, "max_tokens": max_tokens,
                                  **({"grammar": True} if grammar else {})})
                for text, choice, share in zip(texts, resp.choices, shares, strict=True)]

    def _refit(self, message: str) -> int | None:
        """Returns a max_tokens that fits, read from a context-length refusal, or None."""
        limit = _CONTEXT_LIMIT.search(message)
        size = next((m for m in (p.search(message) for p in _PROMPT_SIZE) if m), None)
        if not limit or not size:
            return None
        self.context_window = int(limit.group(1))
        room = self.context_window - int(size.group(1))
        return room if room >= MIN_COMPLETION_TOKENS else None

    def _refusal(self, exc: openai.APIStatusError) -> str:
        """Returns the LLMError message for a request the server refused."""
        hint = {401: f"; check the API key in ${self._cfg.api_key_env}",
                403: f"; check the API key in ${self._cfg.api_key_env}",
                404: "; check llm.model against the server's model list"}.get(exc.status_code, "")
        if _CONTEXT_LIMIT.search(str(exc)):
            hint = "; shorten the prompt or lower llm.max_tokens"
        return f"LLM server at {self.url} refused the request (HTTP {exc.status_code}): {exc}{hint}"

    def _delay(self, attempt: int) -> float:
        """Returns the backoff before retry attempt+1: exponential, capped, with jitter."""
        base, cap = self._backoff
        return min(cap, base * 2**attempt) * random.uniform(0.5, 1.5)

    def load_adapter(self, name: str | None, folder: Any = None) -> None:
        """Loads the PEFT adapter in folder into the server as `name` (vLLM runtime LoRA:
        POST /v1/load_lora_adapter; the server must see folder) and asks for it from now on;
        name None goes back to the base model."""
        if name is not None and folder is not None:
            try:
                resp = httpx.post(f"{self.url}/load_lora_adapter", timeout=self._cfg.timeout_s,
                                  headers={"Authorization": f"Bearer {self._api_key}"},
                                  json={"lora_name": name, "lora_path": str(folder),
                                        "load_inplace": True})
            except httpx.HTTPError as exc:
                raise LLMUnavailable(f"LLM server at {self.url} is unreachable while loading "
                                     f"LoRA adapter {name}: {exc}") from exc
            if not resp.is_success:
                raise LLMError(f"LLM server at {self.url} refused LoRA adapter {name} from "
                               f"{folder} (HTTP {resp.status_code}: {resp.text[:300]}); start "
                               "vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True --enable-lora "
                               "--max-lora-rank R")
        self.adapter = name

    async def aclose(self) -> None:
        """Closes the HTTP client."""
        await self._client.close()


def _split_tokens(total: int, estimates: list[int]) -> list[int]:
    """Returns total split over choices in proportion to their estimated sizes."""
    if len(estimates) == 1:
        return [total]
    if sum(estimates) == 0:
        estimates = [1] * len(estimates)
    return [round(total * e / sum(estimates)) for e in estimates]


def _describe(exc: Exception) -> str:
    """Returns a short description of a transport or server error."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} ({exc})"
    cause = exc.__cause__ or exc.__context__
    return f"{type(exc).__name__}: {exc}" + (f" ({cause})" if cause else "")
