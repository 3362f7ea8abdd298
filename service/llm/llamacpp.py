"""In-process llama-cpp-python on a GGUF file: the embedded CPU backend (SmolLM2 by default)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# ggml's OpenMP threads busy-wait between steps by default; on a small machine shared with
# evaluations (or other models) that turns a 0.3 s request into 10-50 s. Sleeping waits cost
# little here. Takes effect only if OpenMP was not loaded before this import; the user's own
# OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import llama_cpp  # after the OpenMP setting above
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from service.config import ConfigError, LLMConfig
from service.llm.base import AdapterSupport, Completion, LLMError, LLMUnavailable, Message, Sampling
from service.llm.models import SMALL_MODEL_PARAMS, default_model_path, small_model_from_name
from service.llm.token_guard import TokenGuard, TokenTable
from service.settings import Settings

DEFAULT_CONTEXT = 4096
MIN_COMPLETION_TOKENS = 32  # a prompt that leaves less room than this is refused, not sent
_SEED_STRIDE = 1_000_003  # completion j of a request gets seed (seed + j * stride) mod 2^31
TOP_K, MIN_P = 40, 0.05  # llama-cpp-python's create_chat_completion defaults, kept


def resolve_model_path(cfg: LLMConfig, settings: Settings) -> Path:
    """Returns the GGUF to load: cfg.model, else settings.model_path, else the SmolLM2 one."""
    given = cfg.model or settings.model_path
    if given is None:
        return default_model_path()
    path = Path(given).expanduser()
    if not path.is_file():
        raise ConfigError(f"llm.model: GGUF file '{path}' not found; give the path of an existing "
                          ".gguf file, or leave llm.model unset to use the embedded SmolLM2")
    return path


def derive_seeds(seed: int, n: int) -> list[int]:
    """Returns n distinct llama.cpp seeds derived from one request seed."""
    return [(seed + j * _SEED_STRIDE) % 2**31 for j in range(n)]


def thread_split(given: int | None, cores: int) -> tuple[int, int]:
    """Returns llama.cpp's (generation, prompt) threads: `given` for both, else half the cores
    for generation and all of them for prompts.

    Generating one token is a chain of small steps that wait for every thread of the team; on a
    small machine where the evaluations (and anything else) take cores, a team of one loses no
    time waiting and leaves a core to the evaluations: on 2 shared cores, quickstart took
    0.80-0.94 of the CPU of a 2-thread team (wall 0.85-1.16, noisy), texts unchanged
    (docs/benchmarks.md). Prompts are batches, worth the whole machine. llama-cpp-python's own
    server splits alike.
    """
    if given:
        return given, given
    return max(cores // 2, 1), cores


class LlamaCppBackend:
    """llama-cpp-python in this process; one request at a time, on one worker thread.

    Prompt cache: the KV state of the last request stays, and the next prompt evaluates only
    what follows the prefix it shares with it (the system prompt, the problem, often the whole
    parent). The reused prefix is cut so that the rest is evaluated in batches as a cold prompt
    would be (_keep_prefix), so the same prompt and seed give the same text with a warm or a
    cold cache (a test holds this); prompt_cache False clears it before every prompt.
    """

    name = "llamacpp"
    max_concurrency = 1
    adapters = AdapterSupport.LOCAL  # GGUF LoRA files, applied in this process
    bandit = None

    def __init__(self, cfg: LLMConfig, settings: Settings, seed: int = 0,
                 prompt_cache: bool = True) -> None:
        self.prompt_cache = prompt_cache
        self.path = resolve_model_path(cfg, settings)
        threads, batch_threads = thread_split(settings.llm_threads, os.cpu_count() or 1)
        try:
            self._llama: llama_cpp.Llama | None = llama_cpp.Llama(
                model_path=str(self.path), n_ctx=cfg.context_window or DEFAULT_CONTEXT,
                n_threads=threads, n_threads_batch=batch_threads, verbose=False, seed=seed)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"llm.model: llama.cpp cannot load '{self.path}' ({exc}); "
                              "check that it is a complete GGUF model file") from exc
        self.model = self.path.stem
        self.context_window = self._llama.n_ctx()
        n_params = llama_cpp.llama_model_n_params(self._llama.model)
        self.small_model = n_params < SMALL_MODEL_PARAMS or small_model_from_name(self.model)
        self._formatter = self._chat_formatter(self._llama)
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        # llama.cpp contexts are not thread-safe: all model work runs on this one thread, in
        # order (which also keeps one OpenMP thread team for ggml instead of one per caller).
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self._rng = random.Random(seed)
        self.adapter: str | None = None  # the hot-loaded LoRA adapter's name; None: base model
        self._loras: list[llama_cpp.llama_adapter_lora_p] = []  # freed with the model
        self._table: TokenTable | None = None  # the vocabulary for sampling.guard, on first use

    @staticmethod
    def _chat_formatter(llama: llama_cpp.Llama) -> Jinja2ChatFormatter | None:
        """Returns a formatter for the GGUF's own chat template (exact prompt sizes), if any."""
        template = llama.metadata.get("tokenizer.chat_template")
        if not template or llama.chat_format != "chat_template.default":
            return None

        def text(token: int) -> str:
            return llama.detokenize([token], special=True).decode("utf-8", "replace")

        return Jinja2ChatFormatter(template, eos_token=text(llama.token_eos()),
                                   bos_token=text(llama.token_bos()))

    def count_tokens(self, text: str) -> int:
        """Returns the exact number of tokens text takes in this model."""
        return len(self._loaded().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: list[Message]) -> int:
        """Returns the tokens the chat prompt takes (exact with the GGUF's template, else about)."""
        if self._formatter is None:
            return sum(self.count_tokens(m.content) + 5 for m in messages) + 3
        prompt = self._formatter(messages=_as_dicts(messages)).prompt
        return len(self._loaded().tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def fit_max_tokens(self, messages: list[Message], max_tokens: int) -> int:
        """Returns max_tokens lowered to fit the context; raises LLMError when too little fits."""
        used = self.prompt_tokens(messages)
        room = self.context_window - used
        if room < MIN_COMPLETION_TOKENS:
            raise LLMError(f"prompt of {used} tokens leaves {max(room, 0)} of the "
                           f"{self.context_window}-token context for the answer (at least "
                           f"{MIN_COMPLETION_TOKENS} needed); shorten the prompt or raise "
                           "llm.context_window")
        return min(max_tokens, room)

    async def generate(self, prompts: list[list[Message]], n: int,
                       sampling: Sampling) -> list[list[Completion]]:
        """Returns n completions for each prompt, in prompt order."""
        budgets = [self.fit_max_tokens(p, sampling.max_tokens) for p in prompts]  # fail before work
        results = []
        for messages, max_tokens in zip(prompts, budgets, strict=True):
            base = sampling.seed if sampling.seed is not None else self._rng.randrange(2**31)
            seeds = derive_seeds(base, n)
            results.append(await asyncio.get_running_loop().run_in_executor(
                self._worker, self._complete_prompt, messages, max_tokens, seeds, sampling))
        return results

    def _complete_prompt(self, messages: list[Message], max_tokens: int, seeds: list[int],
                         sampling: Sampling) -> list[Completion]:
        """Returns one completion per seed for one prompt (blocking; on the worker thread)."""
        llama = self._loaded()
        if self._formatter is None:  # no chat template in the GGUF: llama-cpp-python's own
            if sampling.seed is not None:
                llama.reset()  # same seed, same text: no dependence on what was cached before
            return [self._chat_one(llama, messages, max_tokens, s, sampling) for s in seeds]
        chat = self._formatter(messages=_as_dicts(messages))
        tokens = llama.tokenize(chat.prompt.encode("utf-8"), add_bos=not chat.added_special,
                                special=True)
        return [self._complete_one(llama, tokens, max_tokens, s, sampling) for s in seeds]

    def _complete_one(self, llama: llama_cpp.Llama, prompt: list[int], max_tokens: int,
                      seed: int, sampling: Sampling) -> Completion:
        """Returns one completion of the prompt's tokens, sampled as create_completion samples,
        ended by an end-of-generation token, max_tokens or sampling.stop_when (blocking)."""
        start = time.perf_counter()
        cached = self._keep_prefix(llama, prompt)
        llama.set_seed(seed)
        out: list[int] = []
        answer = bytearray()  # the answer's bytes so far, for stop_when
        finish, first = "length", None
        guard = None if sampling.guard is None else TokenGuard(self._token_table(llama),
                                                               sampling.guard)
        tokens = llama.generate(prompt, top_k=TOP_K, top_p=sampling.top_p, min_p=MIN_P,
                                temp=sampling.temperature, repeat_penalty=1.0,
                                logits_processor=None if guard is None else [guard])
        try:
            for token in tokens:
                first = first or time.perf_counter()
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                out.append(token)
                if guard is not None:
                    guard.feed(token)
                if sampling.stop_when is not None and self._stops(llama, token, answer, sampling):
                    finish = "stop"
                    break
                if len(out) >= max_tokens:
                    break
        except (ValueError, RuntimeError) as exc:
            raise LLMError(f"llama.cpp failed on {self.model}: {exc}") from exc
        finally:
            tokens.close()
        end = time.perf_counter()
        first = first or end
        return Completion(
            text=llama.detokenize(out, prev_tokens=prompt).decode("utf-8", errors="ignore"),
            finish_reason=finish, prompt_tokens=len(prompt), completion_tokens=len(out),
            latency_s=end - start, model=self.model, adapter=self.adapter,
            extra={"seed": seed, "max_tokens": max_tokens, "cached_tokens": cached,
                   "prompt_s": first - start, "decode_s": end - first})

    def _token_table(self, llama: llama_cpp.Llama) -> TokenTable:
        """Returns the vocabulary's token texts and end-of-generation ids, for token guards."""
        if self._table is None:
            n = llama.n_vocab()
            pieces = [llama.detokenize([i]).decode("utf-8", errors="ignore") for i in range(n)]
            eog = [i for i in range(n) if llama_cpp.llama_vocab_is_eog(self._vocab, i)]
            self._table = TokenTable(pieces, eog)
        return self._table

    def _keep_prefix(self, llama: llama_cpp.Llama, prompt: list[int]) -> int:
        """Cuts the cached state to the prefix this prompt may reuse; returns its length.

        llama.cpp computes a token evaluated alone (a batch of one) slightly differently from
        one evaluated with others: up to 1.0 apart in the logits, enough to change a sampled
        text. A cold prompt is evaluated in batches of n_batch, so its last token is alone only
        when len % n_batch == 1; the reused prefix is cut so that the rest is evaluated alike,
        and then the logits are bit for bit those of a cold cache.
        """
        n, batch = len(prompt), llama.n_batch
        keep = 0
        if self.prompt_cache:
            keep = min(_shared_prefix(llama.input_ids[:llama.n_tokens].tolist(), prompt), n - 1)
            while keep > 0 and ((n - keep) % batch == 1) != (n % batch == 1):
                keep -= 1
        if keep == 0:
            llama.reset()
        llama.n_tokens = keep  # generate() reuses exactly this prefix and evaluates the rest
        return keep

    @staticmethod
    def _stops(llama: llama_cpp.Llama, token: int, answer: bytearray, sampling: Sampling) -> bool:
        """Adds the token's text to answer; returns True when stop_when says the answer is done
        (asked only when a line ended, on the text up to that line end)."""
        piece = llama.detokenize([token])
        answer += piece
        if b"\n" not in piece or sampling.stop_when is None:
            return False
        done = answer[:answer.rfind(b"\n") + 1]
        return sampling.stop_when(done.decode("utf-8", errors="ignore"))

    def _chat_one(self, llama: llama_cpp.Llama, messages: list[Message], max_tokens: int,
                  seed: int, sampling: Sampling) -> Completion:
        """Returns one completion from llama-cpp-python's chat handler (blocking)."""
        start = time.perf_counter()
        try:
            out = llama.create_chat_completion(
                messages=_as_dicts(messages), temperature=sampling.temperature,
                top_p=sampling.top_p, max_tokens=max_tokens, seed=seed)
        except (ValueError, RuntimeError) as exc:
            raise LLMError(f"llama.cpp failed on {self.model}: {exc}") from exc
        choice, usage = out["choices"][0], out["usage"]
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
            latency_s=time.perf_counter() - start, model=self.model, adapter=self.adapter,
            extra={"seed": seed, "max_tokens": max_tokens})

    def load_adapter(self, name: str | None, folder: Path | None) -> None:
        """Hot-loads folder/adapter.gguf (a GGUF LoRA) as `name` for the next requests, no reload;
        name None goes back to the base model. Blocks until requests queued before it finish."""
        self._worker.submit(self._set_adapter, name, folder).result()

    def _set_adapter(self, name: str | None, folder: Path | None) -> None:
        """Swaps the context's LoRA adapter (blocking; on the worker thread)."""
        llama = self._loaded()
        if name is None or folder is None:
            llama_cpp.llama_set_adapters_lora(llama.ctx, None, 0, None)
        else:
            path = Path(folder) / "adapter.gguf"
            if not path.is_file():
                raise LLMError(f"LoRA adapter {name}: {path} not found; publish the adapter with "
                               "service.rl.adapters.save_adapter (it writes the GGUF)")
            lora = llama_cpp.llama_adapter_lora_init(llama.model, str(path).encode("utf-8"))
            if not lora:
                raise LLMError(f"llama.cpp cannot load the LoRA adapter {path} for {self.model}; "
                               "it must be a GGUF LoRA of this base model")
            self._loras.append(lora)
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(lora)
            if llama_cpp.llama_set_adapters_lora(llama.ctx, adapters, 1, (ctypes.c_float * 1)(1.0)):
                raise LLMError(f"llama.cpp refused to apply the LoRA adapter {path}")
        llama.reset()  # the cached prompt prefix was computed with the old weights
        self.adapter = name

    def _loaded(self) -> llama_cpp.Llama:
        """Returns the loaded model, or raises LLMUnavailable after aclose()."""
        if self._llama is None:
            raise LLMUnavailable(f"the llama.cpp backend for {self.model} was closed; "
                                 "make a new one")
        return self._llama

    async def aclose(self) -> None:
        """Releases the model's memory; later calls raise LLMUnavailable."""
        if self._llama is not None:
            await asyncio.get_running_loop().run_in_executor(self._worker, self._close)
            self._worker.shutdown()

    def _close(self) -> None:
        """Frees the model after the requests queued before it (blocking; on the worker thread)."""
        if self._llama is not None:
            self._llama.close()
            self._llama = None


def _shared_prefix(a: list[int], b: list[int]) -> int:
    """Returns how many leading tokens a and b share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _as_dicts(messages: list[Message]) -> list[dict[str, str]]:
    """Returns messages in the OpenAI dict form llama.cpp takes."""
    return [{"role": m.role, "content": m.content} for m in messages]
