"""GRPO completions from llama.cpp with the trainer's LoRA: the HF tokenizer's ids, the policy's
log-probs, seeded, and a real TRL step trained on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from service.config import ConfigError, RLConfig
from service.llm.models import default_model_path
from service.rl.generation import LlamaCppRollout, check_vocab, lora_of, pick_generator

pytestmark = pytest.mark.llm  # the real SmolLM2 (GGUF in llama.cpp, HF in TRL)

PROMPT = [{"role": "user", "content": "Write a Python function that sorts a list."}]
RL = RLConfig(steps=1, group_size=4, max_completion_tokens=24, learning_rate=3e-2, threads=1,
              generator="llama_cpp")


def length_reward(completions: list, **_: object) -> list[float]:
    """Rewards longer answers: varies within a group, so GRPO's gradients are not zero."""
    return [len(c[0]["content"]) / 50 for c in completions]


@pytest.fixture(scope="module")
def hf(base_dir: Path) -> tuple:
    """Returns (PeftModel with a random LoRA B, tokenizer, the prompt's HF ids)."""
    from peft import get_peft_model

    from service.llm.models import load_base_model
    from service.rl.grpo import lora_config

    model, tokenizer = load_base_model(base_dir)
    torch.manual_seed(0)
    peft = get_peft_model(model, lora_config(RL))
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0.0, 0.12)
    ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"]
    return peft, tokenizer, ids


@pytest.fixture(scope="module")
def rollout(tmp_path_factory: pytest.TempPathFactory) -> LlamaCppRollout:
    """Returns a llama.cpp rollout on the embedded GGUF (1 thread)."""
    made = LlamaCppRollout(default_model_path(), tmp_path_factory.mktemp("rollout"), 1)
    yield made
    made.close()


def _hf_logprobs(peft: object, prompt: list[int], completion: list[int], temperature: float,
                 adapter: bool = True) -> np.ndarray:
    """Returns the HF model's log-probs of completion after prompt (TRL's: logits / T)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        if adapter:
            logits = peft(ids).logits[0]
        else:
            with peft.disable_adapter():
                logits = peft(ids).logits[0]
    logits = logits[len(prompt) - 1:-1].double() / temperature
    return torch.log_softmax(logits, -1).gather(1, torch.tensor(completion)[:, None])[:, 0].numpy()


def test_auto_picks_llamacpp_on_cpu_with_a_gguf_and_transformers_otherwise() -> None:
    gguf = default_model_path()
    assert pick_generator(RLConfig(), gguf, gpu=False) == "llama_cpp"
    assert pick_generator(RLConfig(), gguf, gpu=True) == "transformers"
    assert pick_generator(RLConfig(), None, gpu=False) == "transformers"
    assert pick_generator(RLConfig(generator="transformers"), gguf, gpu=False) == "transformers"
    assert pick_generator(RLConfig(generator="llama_cpp"), gguf, gpu=True) == "llama_cpp"
    with pytest.raises(ConfigError, match=r"rl\.generator"):
        pick_generator(RLConfig(generator="llama_cpp"), None, gpu=False)


def test_the_gguf_vocabulary_is_the_hf_tokenizers(rollout: LlamaCppRollout, hf: tuple) -> None:
    tokenizer = hf[1]
    check_vocab(rollout, tokenizer)
    other = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    other.add_tokens(["<not-in-the-gguf>"])
    with pytest.raises(ConfigError, match="vocabulary"):
        check_vocab(rollout, other)


def test_the_lora_is_applied_and_logprobs_match_the_hf_model_with_it(
        rollout: LlamaCppRollout, hf: tuple) -> None:
    peft, tokenizer, prompt = hf
    eos = {tokenizer.eos_token_id}
    rollout.set_lora(*lora_of(peft))
    with_lora = rollout.sample(prompt, 2, 48, 0.7, eos, [1])
    rollout.set_lora(None)
    without = rollout.sample(prompt, 2, 48, 0.7, eos, [1])
    assert [c for c, _ in with_lora] != [c for c, _ in without]  # same seed, other policy
    for completion, logprobs in with_lora:
        gap = np.abs(_hf_logprobs(peft, prompt, completion, 0.7) - logprobs)
        base_gap = np.abs(_hf_logprobs(peft, prompt, completion, 0.7, adapter=False) - logprobs)
        # Q4_1 x Q8 arithmetic against float32: measured 0.04-0.06 mean per token; the base
        # model without the LoRA is ~0.4 away from what llama.cpp with it computed
        assert gap.mean() < 0.1 and gap.max() < 1.0
        assert base_gap.mean() > 3 * gap.mean()
    for completion, logprobs in without:
        assert np.abs(_hf_logprobs(peft, prompt, completion, 0.7, False) - logprobs).mean() < 0.1


def test_same_seed_same_completions_and_ends_at_eos_or_the_limit(
        rollout: LlamaCppRollout, hf: tuple) -> None:
    peft, tokenizer, prompt = hf
    rollout.set_lora(*lora_of(peft))
    first = rollout.sample(prompt, 4, 32, 1.0, {tokenizer.eos_token_id}, [7, 0])
    assert rollout.sample(prompt, 4, 32, 1.0, {tokenizer.eos_token_id}, [7, 0]) == first
    assert rollout.sample(prompt, 4, 32, 1.0, {tokenizer.eos_token_id}, [8, 0]) != first
    assert len({tuple(c) for c, _ in first}) == 4  # the group's sequences differ
    for completion, logprobs in first:
        assert len(completion) == len(logprobs) <= 32
        assert all(p <= 0 for p in logprobs)
        ends = [i for i, t in enumerate(completion) if t == tokenizer.eos_token_id]
        assert ends in ([], [len(completion) - 1])  # eos, if any, is the last token and kept
        assert ends or len(completion) == 32


@pytest.fixture(scope="module")
def stepped(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Returns one real TRL GRPO step with llama.cpp completions: what the reward saw, the LoRA
    before and after, and the rollout's prompt and completion ids."""
    from peft import get_peft_model

    from service.llm.models import load_base_model
    from service.rl.grpo import grpo_train, lora_config

    model, tokenizer = load_base_model(base_dir)
    torch.manual_seed(0)
    peft = get_peft_model(model, lora_config(RL))
    before = {n: p.detach().clone() for n, p in peft.named_parameters() if "lora_" in n}
    seen: list[dict] = []

    def reward(completions: list, completion_ids: list, **kwargs: object) -> list[float]:
        seen.append({"texts": [c[0]["content"] for c in completions], "ids": completion_ids})
        return length_reward(completions)

    out = grpo_train(peft, tokenizer, [{"prompt": PROMPT}], reward, RL, 1,
                     tmp_path_factory.mktemp("grpo"), seed=3, gguf=default_model_path())
    return {"model": out, "before": before, "seen": seen, "tokenizer": tokenizer}


def test_a_grpo_step_on_llamacpp_completions_changes_the_lora(stepped: dict) -> None:
    after = dict(stepped["model"].named_parameters())
    b = [n for n in stepped["before"] if "lora_B" in n]
    changed = [n for n in b if not torch.equal(after[n], stepped["before"][n])]
    assert len(changed) == len(b) == 30 * 4  # every B moved (A's gradient is 0 while B is)
    assert len(stepped["seen"]) == 1 and len(stepped["seen"][0]["ids"]) == RL.group_size


def test_completion_ids_are_the_hf_tokenizers_for_the_text_llamacpp_wrote(
        stepped: dict, rollout: LlamaCppRollout) -> None:
    tokenizer = stepped["tokenizer"]
    seen = stepped["seen"][0]
    assert len(set(seen["texts"])) > 1
    for text, ids in zip(seen["texts"], seen["ids"], strict=True):
        assert 0 < len(ids) <= RL.max_completion_tokens
        assert text == rollout.detokenize(list(ids))
        assert text == tokenizer.decode(ids, skip_special_tokens=True)
