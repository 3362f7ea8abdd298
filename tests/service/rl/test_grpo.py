"""Real GRPO steps with a LoRA adapter on the real SmolLM2, then the adapter saved, recorded,
hot-loaded into the llama.cpp and transformers backends, changing what they write."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from service.config import LLMConfig, RLConfig
from service.llm.base import Message, Sampling
from service.rl.adapters import AdapterInfo, latest_adapter, list_adapters, publish, save_adapter
from service.settings import Settings
from tests.service.driver import scripted_run

pytestmark = pytest.mark.llm  # the real SmolLM2 (trained, converted, served)

PROMPTS = ["Write a Python function that returns the number 10.",
           "Write a Python function value() that returns a float close to 3.",
           "Improve this code: def f(x): return x",
           "Write a one-line Python function that adds two numbers."]
# A high learning rate so that a few steps change greedy outputs, not just float noise.
RL = RLConfig(steps=3, group_size=4, max_completion_tokens=16, learning_rate=3e-2, temperature=1.0)


def length_reward(completions: list, **_: object) -> list[float]:
    """Rewards longer answers: varies within a group, so GRPO's gradients are not zero."""
    return [len(c[0]["content"]) / 50 for c in completions]


@pytest.fixture(scope="module")
def trained(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Returns the trained PeftModel, LoRA/base snapshots from before training, and its record."""
    from peft import get_peft_model

    from service.llm.models import load_base_model
    from service.rl.grpo import grpo_train, lora_config

    model, tokenizer = load_base_model(base_dir)
    torch.manual_seed(0)
    peft = get_peft_model(model, lora_config(RL))
    before = {n: p.detach().clone() for n, p in peft.named_parameters()}
    rows = [{"prompt": [{"role": "user", "content": p}]} for p in PROMPTS[:RL.steps]]
    work = tmp_path_factory.mktemp("grpo")
    out = grpo_train(peft, tokenizer, rows, length_reward, RL, RL.steps, work / "trainer")
    db, run_id = scripted_run(f"sqlite:///{work / 'e.db'}", work / "tiny")
    info = save_adapter(db, out, run_id=run_id, name=f"run{run_id}-v1", version=1,
                        steps=RL.steps, base_model=str(base_dir), folder=work / "v1",
                        reward_stats={"n": 12}, alpha=RL.lora_alpha)
    return {"model": out, "before": before, "info": info, "db": db, "run_id": run_id}


def test_grpo_steps_move_lora_weights_and_leave_the_base_alone(trained: dict) -> None:
    after = dict(trained["model"].named_parameters())
    lora = [n for n in trained["before"] if "lora_" in n]
    base = [n for n in trained["before"] if "lora_" not in n]
    assert len(lora) == 30 * 4 * 2  # 30 layers x q/k/v/o x (A, B)
    changed = [n for n in lora if not torch.equal(after[n], trained["before"][n])]
    assert set(changed) == set(lora)
    assert all(not after[n].requires_grad or torch.equal(after[n], trained["before"][n])
               for n in base)
    assert all(torch.equal(after[n], trained["before"][n]) for n in base)


def test_adapter_is_saved_and_recorded(trained: dict) -> None:
    info: AdapterInfo = trained["info"]
    assert (info.path / "adapter_model.safetensors").is_file() and info.gguf.is_file()
    assert latest_adapter(trained["db"], trained["run_id"]) == info
    assert [a.version for a in list_adapters(trained["db"], trained["run_id"])] == [1]
    assert info.steps == RL.steps and info.reward_stats == {"n": 12}


def test_an_adapter_for_a_server_alone_is_saved_without_its_gguf(trained: dict,
                                                                 tmp_path: Path) -> None:
    db, run_id = scripted_run(f"sqlite:///{tmp_path / 'e.db'}", tmp_path / "tiny")
    info = save_adapter(db, trained["model"], run_id=run_id, name="peft-only", version=1, steps=1,
                        base_model=trained["info"].base_model, folder=tmp_path / "v1",
                        reward_stats={}, alpha=RL.lora_alpha, gguf=False)
    assert (info.path / "adapter_model.safetensors").is_file() and not info.gguf.exists()


async def _greedy(llm: object, prompts: list[str] = PROMPTS) -> list[str]:
    messages = [[Message("user", p)] for p in prompts]
    out = await llm.generate(messages, 1, Sampling(temperature=0.0, max_tokens=24, seed=1))
    return [batch[0].text for batch in out]


def test_llamacpp_hot_loads_the_gguf_adapter_and_it_changes_outputs(trained: dict) -> None:
    from service.llm.llamacpp import LlamaCppBackend

    async def go() -> tuple[list[str], list[str], list[str], str | None]:
        llm = LlamaCppBackend(LLMConfig(), Settings())
        try:
            base = await _greedy(llm)
            await asyncio.to_thread(publish, llm, trained["info"])
            tuned = await _greedy(llm)
            adapter = (await llm.generate([[Message("user", "hi")]], 1,
                                          Sampling(max_tokens=4)))[0][0].adapter
            await asyncio.to_thread(llm.load_adapter, None, None)
            return base, tuned, await _greedy(llm), adapter
        finally:
            await llm.aclose()

    base, tuned, back, adapter = asyncio.run(go())
    assert tuned != base and adapter == trained["info"].name
    assert back == base  # unloading returns to the base model's answers


def test_transformers_backend_hot_loads_the_peft_adapter(trained: dict) -> None:
    from service.llm.hf import TransformersBackend

    async def go() -> tuple[list[str], list[str]]:
        llm = TransformersBackend(LLMConfig(backend="transformers"), Settings())
        try:
            base = await _greedy(llm, PROMPTS[:2])  # transformers is slow on CPU: two prompts
            publish(llm, trained["info"])
            return base, await _greedy(llm, PROMPTS[:2])
        finally:
            await llm.aclose()

    base, tuned = asyncio.run(go())
    assert tuned != base
