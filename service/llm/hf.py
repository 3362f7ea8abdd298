"""In-process transformers + PEFT: the trainer's own model as backend (slow on CPU, exact LoRA)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from service.config import ConfigError, LLMConfig
from service.llm.base import AdapterSupport, Completion, LLMError, LLMUnavailable, Message, Sampling
from service.llm.models import SMALL_MODEL_PARAMS, small_model_from_name
from service.llm.token_guard import TokenTable
from service.settings import Settings

DEFAULT_CONTEXT = 4096
MIN_COMPLETION_TOKENS = 32


def resolve_model_dir(cfg: LLMConfig, settings: Settings) -> Path:
    """Returns the HF folder to load: cfg.model as a folder, else the converted GGUF (cached)."""
    from service.llm.models import base_model_dir

    given = Path(cfg.model).expanduser() if cfg.model else None
    if given is not None and given.is_dir():
        if not (given / "config.json").is_file():
            raise ConfigError(f"llm.model: '{given}' has no config.json; give a Hugging Face "
                              "model folder or a GGUF file")
        return given
    if given is not None and not given.is_file():
        raise ConfigError(f"llm.model: '{given}' not found; give an HF folder or a GGUF file")
    return base_model_dir(given or settings.model_path)


class TransformersBackend:
    """transformers generate() in this process, one request at a time on one worker thread;
    PEFT LoRA adapters hot-load by name (load_adapter)."""

    name = "transformers"
    max_concurrency = 1
    adapters = AdapterSupport.LOCAL  # PEFT adapter folders, loaded into this process
    bandit = None

    def __init__(self, cfg: LLMConfig, settings: Settings, seed: int = 0) -> None:
        import torch

        from service.llm.models import load_base_model

        # Oversubscribed cores make torch's thread team spin: half the cores by default.
        torch.set_num_threads(settings.llm_threads or max(1, (os.cpu_count() or 2) // 2))
        self.path = resolve_model_dir(cfg, settings)
        self._model, self._tokenizer = load_base_model(self.path)
        self._model.eval()
        self.model = self.path.name.removesuffix("-hf")
        self.context_window = cfg.context_window or DEFAULT_CONTEXT
        n_params = sum(p.numel() for p in self._model.parameters())
        self.small_model = n_params < SMALL_MODEL_PARAMS or small_model_from_name(self.model)
        self.adapter: str | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transformers")
        self._rng = random.Random(seed)
        self._closed = False
        self._table: TokenTable | None = None  # the vocabulary for guards and stop_when, once

    def count_tokens(self, text: str) -> int:
        """Returns the exact number of tokens text takes in this model."""
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def _prompt_ids(self, messages: list[Message]) -> Any:
        ids = self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True, return_tensors="pt", return_dict=True)
        return ids["input_ids"]

    async def generate(self, prompts: list[list[Message]], n: int,
                       sampling: Sampling) -> list[list[Completion]]:
        """Returns n completions for each prompt, in prompt order."""
        if self._closed:
            raise LLMUnavailable(f"the transformers backend for {self.model} was closed")
        loop = asyncio.get_running_loop()
        results = []
        for messages in prompts:
            seed = sampling.seed if sampling.seed is not None else self._rng.randrange(2**31)
            results.append(await loop.run_in_executor(
                self._worker, self._complete_prompt, messages, n, sampling, seed))
        return results

    def _complete_prompt(self, messages: list[Message], n: int, sampling: Sampling,
                         seed: int) -> list[Completion]:
        """Returns n completions of one prompt (blocking; on the worker thread)."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from service.llm.hf_steering import RuleMasks, StopWhen

        ids = self._prompt_ids(messages)
        room = self.context_window - ids.shape[1]
        if room < MIN_COMPLETION_TOKENS:
            raise LLMError(f"prompt of {ids.shape[1]} tokens leaves {max(room, 0)} of the "
                           f"{self.context_window}-token context; shorten the prompt")
        max_new = min(sampling.max_tokens, room)
        greedy = sampling.temperature == 0
        prompt_len = ids.shape[1]
        masks = stops = None
        if sampling.guard is not None:
            masks = RuleMasks(self._token_table(), sampling.guard, n, prompt_len)
        if sampling.stop_when is not None:
            stops = StopWhen(self._token_table().pieces, sampling.stop_when, n, prompt_len)
        torch.manual_seed(seed)
        start = time.perf_counter()
        with torch.no_grad(), self._adapter_scope():
            out = self._model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                do_sample=not greedy, num_return_sequences=n,
                pad_token_id=self._tokenizer.pad_token_id,
                logits_processor=LogitsProcessorList([masks] if masks else []),
                stopping_criteria=StoppingCriteriaList([stops] if stops else []),
                **({} if greedy else {"temperature": sampling.temperature,
                                      "top_p": sampling.top_p}))
        latency = (time.perf_counter() - start) / n
        completions, ends = [], self._eog
        for k, row in enumerate(out[:, prompt_len:].tolist()):
            eog = next((i for i, token in enumerate(row) if token in ends), None)
            stopped = stops.lengths[k] if stops is not None else None
            if stopped is not None and (eog is None or stopped < eog):
                eog = stopped  # stop_when ended it after this token: it is kept
            tokens = row[:eog] if eog is not None else row
            completions.append(Completion(
                text=self._tokenizer.decode(tokens, skip_special_tokens=True),
                finish_reason="stop" if eog is not None or len(row) < max_new else "length",
                prompt_tokens=prompt_len, completion_tokens=len(tokens), latency_s=latency,
                model=self.model, adapter=self.adapter, extra={"seed": seed}))
        return completions

    @property
    def _eog(self) -> set[int]:
        """The ids that end a generation: the tokenizer's and the generation config's."""
        ids = self._model.generation_config.eos_token_id
        ids = ids if isinstance(ids, list) else [ids]
        return {i for i in (*ids, self._tokenizer.eos_token_id) if i is not None}

    def _token_table(self) -> TokenTable:
        """Returns the vocabulary's token texts and end-of-generation ids (built once)."""
        from service.llm.hf_steering import token_table

        if self._table is None:
            self._table = token_table(self._tokenizer, sorted(self._eog))
        return self._table

    def _adapter_scope(self) -> contextlib.AbstractContextManager:
        """Returns a context that runs the base model when no adapter is active."""
        if self.adapter is None and hasattr(self._model, "disable_adapter"):
            return self._model.disable_adapter()
        return contextlib.nullcontext()

    def load_adapter(self, name: str | None, folder: Path | None) -> None:
        """Hot-loads the PEFT adapter in folder as `name` for the next requests (None: base)."""
        self._worker.submit(self._set_adapter, name, folder).result()

    def _set_adapter(self, name: str | None, folder: Path | None) -> None:
        """Loads and activates an adapter (blocking; on the worker thread)."""
        from peft import PeftModel

        if name is not None and folder is not None:
            if not (Path(folder) / "adapter_config.json").is_file():
                raise LLMError(f"LoRA adapter {name}: {folder} holds no adapter_config.json")
            if isinstance(self._model, PeftModel):
                if name not in self._model.peft_config:
                    self._model.load_adapter(str(folder), adapter_name=name)
                self._model.set_adapter(name)
            else:
                self._model = PeftModel.from_pretrained(self._model, str(folder), adapter_name=name)
            self._model.eval()
        self.adapter = name

    async def aclose(self) -> None:
        """Releases the model; later calls raise LLMUnavailable."""
        self._closed = True
        self._worker.shutdown(wait=True)
