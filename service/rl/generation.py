"""GRPO completions written by llama.cpp with the trainer's current LoRA: TRL's `rollout_func`.

On CPU, HF `generate` is most of a GRPO step (33 of ~51 CPU s at 4 x 256 tokens: float32
weights read once per token). llama.cpp decodes the same model from its Q4_1 GGUF (the HF folder
is that GGUF dequantised, service/llm/models.py), the group's sequences side by side in one
batch (one token of each per decode: 12.6 CPU ms a token at 4 x 256, ~16 alone). Before each
generation the trainer's LoRA tensors are written as a GGUF LoRA (service/rl/adapters.py) and
applied to the loaded model, so the completions come from the policy being trained.

Sampling is TRL's own (temperature only: top_k 0, top_p 1, no min_p), drawn here from
softmax(logits / temperature) with a seeded numpy generator, and the sampled token's log-prob
is that same log-softmax: what TRL computes in the loss, up to llama.cpp's Q4_1 x Q8 arithmetic.
Token ids are the HF tokenizer's (the GGUF holds the same vocabulary; `check_vocab` holds it).
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

import numpy as np

from service.config import ConfigError, RLConfig
from service.llm.llamacpp import llama_cpp  # sets OMP_WAIT_POLICY before llama.cpp loads
from service.rl.adapters import write_gguf_lora

BATCH = 512  # tokens per llama_decode of a prompt
PROBE = "def f(x):\n    return [x ** 2 for x in range(10)]  # café ✓\n"


def pick_generator(rl: RLConfig, gguf: Path | None, gpu: bool) -> str:
    """Returns "llama_cpp" or "transformers" for rl.generator ("auto": llama.cpp on CPU when the
    base model is a GGUF, else transformers); raises ConfigError when llama_cpp cannot be."""
    if rl.generator == "transformers":
        return "transformers"
    if gguf is None:
        if rl.generator == "llama_cpp":
            raise ConfigError("rl.generator = \"llama_cpp\" needs a llama-architecture base model "
                              "converted from a GGUF (not rl.base_model): set rl.generator = "
                              "\"transformers\" (or \"auto\")")
        return "transformers"
    return "llama_cpp" if rl.generator == "llama_cpp" or not gpu else "transformers"


class LlamaCppRollout:
    """TRL rollout_func: llama.cpp samples each prompt's group with the trainer's current LoRA.

    The model is loaded for each generation and freed after it: loading the GGUF and making a
    context cost ~0.1 CPU s, and the ~150 MB they hold (the mapped GGUF, the KV cache) then stay
    out of the peak of the loss's backward. The KV cache is unified so that the prompt,
    evaluated once, is shared by the group's sequences.
    """

    def __init__(self, gguf: Path, work_dir: Path, threads: int, seed: int = 0) -> None:
        if logging.getLogger("llama-cpp-python").level == logging.NOTSET:
            logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # its load chatter
        self.gguf, self.seed = gguf, seed
        self.model: Any = None
        self.vocab: Any = None
        self.n_vocab = 0
        self.lora_file = work_dir / "rollout-lora.gguf"
        self.threads = threads
        self.ctx: Any = None
        self.n_ctx = self.n_seq = 0
        self.batch: Any = None
        self.lora: Any = None
        self.calls = 0

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        """Returns prompt_ids, completion_ids and logprobs, one completion per prompt in order
        (TRL repeats each prompt num_generations times; a run of repeats is sampled as one
        group), sampled with the trainer's current LoRA and temperature."""
        try:
            return self._generate(prompts, trainer)
        finally:
            self.close()

    def _generate(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        tokenizer = trainer.processing_class
        if self.calls == 0:
            check_vocab(self, tokenizer)
        self.set_lora(*lora_of(trainer.model))
        if isinstance(prompts[0], str):
            ids = tokenizer(prompts)["input_ids"]
        else:  # as TRL tokenises conversational prompts itself
            ids = tokenizer.apply_chat_template(conversation=prompts, add_generation_prompt=True,
                                                tokenize=True, return_dict=True)["input_ids"]
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": []}
        runs = _runs(ids, trainer.num_generations)
        for index, (prompt, n) in enumerate(runs):
            seed = [self.seed, trainer.state.global_step, self.calls, index]
            for completion, logprobs in self.sample(
                    prompt, n, trainer.max_completion_length, trainer.temperature,
                    set(trainer.eos_token_ids), seed):
                out["prompt_ids"].append(prompt)
                out["completion_ids"].append(completion)
                out["logprobs"].append(logprobs)
        self.calls += 1
        return out

    def set_lora(self, tensors: dict[str, np.ndarray] | None, config: dict[str, Any] | None = None,
                 alpha: float = 0.0) -> None:
        """Applies LoRA tensors (PEFT names, with lora_alpha alpha) for the base model of HF
        config to the next samples; None: the base model."""
        self._context(1, 1)
        old = self.lora
        if tensors is None:
            self.lora = None
            llama_cpp.llama_set_adapters_lora(self.ctx, None, 0, None)
        else:
            write_gguf_lora(tensors, config or {}, self.lora_file, alpha)
            self.lora = llama_cpp.llama_adapter_lora_init(
                self.model, str(self.lora_file).encode("utf-8"))
            if not self.lora:
                raise RuntimeError(f"llama.cpp cannot load the LoRA {self.lora_file}")
            self._apply_lora()
        if old:  # no longer set on the context: free it now (else it lives as long as the model)
            llama_cpp.llama_adapter_lora_free(old)

    def sample(self, prompt: list[int], n: int, max_tokens: int, temperature: float,
               eos: set[int], seed: list[int]) -> list[tuple[list[int], list[float]]]:
        """Returns n (completion ids, their log-probs) of prompt, decoded side by side; a
        completion ends with its first eos token (kept, as TRL keeps it) or at max_tokens."""
        self._context(len(prompt) + n * max_tokens, n)
        mem = llama_cpp.llama_get_memory(self.ctx)
        llama_cpp.llama_memory_clear(mem, True)
        for start in range(0, len(prompt), BATCH):
            chunk = prompt[start:start + BATCH]
            self._decode([(t, start + i, 0, start + i == len(prompt) - 1)
                          for i, t in enumerate(chunk)])
        first = self._logits(-1)
        for j in range(1, n):
            llama_cpp.llama_memory_seq_cp(mem, 0, j, -1, -1)
        rngs = [np.random.default_rng(seed + [j]) for j in range(n)]
        outs: list[tuple[list[int], list[float]]] = [([], []) for _ in range(n)]
        logits = dict.fromkeys(range(n), first)
        while logits:
            batch = []
            for j, row in logits.items():
                token, logprob = _draw(row, temperature, rngs[j])
                outs[j][0].append(token)
                outs[j][1].append(logprob)
                if token not in eos and len(outs[j][0]) < max_tokens:
                    batch.append((token, len(prompt) + len(outs[j][0]) - 1, j, True))
            if not batch:
                break
            self._decode(batch)
            logits = {j: self._logits(i) for i, (_, _, j, _) in enumerate(batch)}
        return outs

    def load(self) -> None:
        """Loads the GGUF (if it is not loaded)."""
        if self.model:
            return
        llama_cpp.llama_backend_init()
        self.model = llama_cpp.llama_model_load_from_file(
            str(self.gguf).encode("utf-8"), llama_cpp.llama_model_default_params())
        if not self.model:
            raise ConfigError(f"rl.generator llama_cpp: llama.cpp cannot load '{self.gguf}'; "
                              "set rl.generator = \"transformers\"")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def _context(self, cells: int, n_seq: int) -> None:
        """Makes a context of at least `cells` KV cells and n_seq sequences (kept if it has)."""
        self.load()
        if self.ctx and self.n_ctx >= cells and self.n_seq >= n_seq:
            return
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = max(self.n_ctx, -(-cells // 256) * 256)
        params.n_batch = params.n_ubatch = BATCH
        params.n_seq_max = max(self.n_seq, n_seq)
        params.kv_unified = True  # the prompt's cells are shared by the group's sequences
        params.n_threads = params.n_threads_batch = self.threads
        ctx = llama_cpp.llama_init_from_model(self.model, params)
        if not ctx:
            raise RuntimeError(f"llama.cpp cannot make a context of {params.n_ctx} tokens")
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            llama_cpp.llama_batch_free(self.batch)
        self.ctx, self.n_ctx, self.n_seq = ctx, params.n_ctx, params.n_seq_max
        self.batch = llama_cpp.llama_batch_init(max(BATCH, self.n_seq), 0, self.n_seq)
        if self.lora:  # a new context starts without adapters
            self._apply_lora()

    def _apply_lora(self) -> None:
        """Sets the loaded LoRA on the context at scale 1 (times the GGUF's alpha / r)."""
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self.lora)
        if llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, (ctypes.c_float * 1)(1.0)):
            raise RuntimeError(f"llama.cpp refused the LoRA {self.lora_file}")

    def _decode(self, tokens: list[tuple[int, int, int, bool]]) -> None:
        """Decodes (token, position, sequence, wants logits) in one batch."""
        b = self.batch
        b.n_tokens = len(tokens)
        for i, (token, pos, seq, logits) in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
            b.seq_id[i][0] = seq
        if llama_cpp.llama_decode(self.ctx, b):
            raise RuntimeError(f"llama.cpp failed to decode a batch of {len(tokens)} tokens")

    def _logits(self, i: int) -> np.ndarray:
        """Returns a copy of the logits of the last batch's i-th token that asked for them."""
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, i)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)

    def detokenize(self, ids: list[int]) -> str:
        """Returns the text llama.cpp makes of token ids (special tokens left out)."""
        self.load()
        size = 16 * len(ids) + 16
        text = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(self.vocab, (llama_cpp.llama_token * len(ids))(*ids),
                                       len(ids), text, size, True, False)
        return text.raw[:n].decode("utf-8", errors="replace")

    def close(self) -> None:
        """Frees the context, the adapter and the model (the next use loads them again)."""
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            llama_cpp.llama_batch_free(self.batch)
            self.ctx, self.n_ctx, self.n_seq = None, 0, 0
        if self.model:
            llama_cpp.llama_model_free(self.model)  # frees its adapters too
            self.model = self.lora = self.vocab = None


def check_vocab(rollout: LlamaCppRollout, tokenizer: Any) -> None:
    """Raises ConfigError unless the GGUF and the HF tokenizer give the same ids."""
    rollout.load()
    text = PROBE.encode("utf-8")
    buf = (llama_cpp.llama_token * 256)()
    n = llama_cpp.llama_tokenize(rollout.vocab, text, len(text), buf, 256, False, True)
    ours = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
    if rollout.n_vocab != len(tokenizer) or list(buf[:n]) != ours:
        raise ConfigError("rl.generator llama_cpp: the GGUF's vocabulary differs from the HF "
                          "tokenizer's; set rl.generator = \"transformers\"")


def _draw(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> tuple[int, float]:
    """Returns a token drawn from softmax(logits / temperature) and its log-probability."""
    z = logits / temperature
    z -= z.max()
    p = np.exp(z)
    total = p.sum()
    cdf = np.cumsum(p)
    token = min(int(np.searchsorted(cdf, rng.random() * total, side="right")), len(p) - 1)
    return token, float(z[token] - np.log(total))


def _runs(ids: list[list[int]], size: int) -> list[tuple[list[int], int]]:
    """Returns (prompt, repeats) for each run of equal consecutive prompts, runs of at most size."""
    runs: list[tuple[list[int], int]] = []
    for prompt in ids:
        if runs and runs[-1][0] == prompt and runs[-1][1] < size:
            runs[-1] = (prompt, runs[-1][1] + 1)
        else:
            runs.append((prompt, 1))
    return runs


def lora_of(model: Any) -> tuple[dict[str, np.ndarray], dict[str, Any], float]:
    """Returns a PeftModel's active LoRA (float32 numpy tensors, PEFT names), its base model's
    HF config and its lora_alpha."""
    from peft import get_peft_model_state_dict

    tensors = {k: v.detach().float().cpu().numpy()
               for k, v in get_peft_model_state_dict(model).items()}
    alpha = model.peft_config[model.active_adapter].lora_alpha
    return tensors, model.config.to_dict(), float(alpha)
