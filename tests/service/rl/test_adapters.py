"""PEFT LoRA -> GGUF LoRA conversion: llama.cpp with the GGUF computes what PEFT computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.rl.adapters import peft_to_gguf, rotary_permute

pytestmark = pytest.mark.llm  # the real SmolLM2 (trained, converted, served)

TEXT = ("<|im_start|>user\nWrite a python function that adds two numbers.<|im_end|>\n"
        "<|im_start|>assistant\n```python\ndef add(a, b):\n    return a + b\n```\nThis function "
        "takes two numbers and returns their sum.")


def test_rotary_permute_interleaves_the_halves_of_each_head() -> None:
    rows = np.arange(8, dtype=np.float32).reshape(8, 1)  # 2 heads of dim 4: [x0 x1 y0 y1]
    assert rotary_permute(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert rotary_permute(np.ones((6, 3)), 3).shape == (6, 3)


@pytest.fixture(scope="module")
def random_adapter(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Returns (folder, PEFT logits, base logits, token ids) for a LoRA with random B."""
    import torch
    from peft import get_peft_model

    from service.config import RLConfig
    from service.llm.models import load_base_model
    from service.rl.grpo import lora_config

    model, tokenizer = load_base_model(base_dir)
    torch.manual_seed(0)
    peft = get_peft_model(model, lora_config(RLConfig()))
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0.0, 0.12)
    folder = tmp_path_factory.mktemp("adapter")
    peft.save_pretrained(str(folder))
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        with_lora = peft(ids).logits[0].numpy()
        with peft.disable_adapter():
            base = peft(ids).logits[0].numpy()
    return folder, with_lora, base, ids[0].tolist()


def _llama_logits(lora: Path | None, ids: list[int]) -> np.ndarray:
    import llama_cpp

    from service.llm.models import default_model_path

    llama = llama_cpp.Llama(model_path=str(default_model_path()), n_ctx=256, logits_all=True,
                            lora_path=str(lora) if lora else None, verbose=False)
    try:
        llama.eval(ids)
        return np.array(llama.scores[:len(ids)])
    finally:
        llama.close()


def test_gguf_lora_in_llamacpp_matches_peft(random_adapter: tuple, base_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder, peft_logits, base_logits, ids = random_adapter
    good = peft_to_gguf(folder, base_dir, folder / "good.gguf")
    from service.rl import adapters

    monkeypatch.setattr(adapters, "rotary_permute", lambda rows, n_head: rows)
    unpermuted = adapters.peft_to_gguf(folder, base_dir, folder / "unpermuted.gguf")
    got, wrong = _llama_logits(good, ids), _llama_logits(unpermuted, ids)

    def top1(a: np.ndarray) -> float:
        return float((a.argmax(-1) == peft_logits.argmax(-1)).mean())

    assert top1(base_logits) < 0.9  # the adapter really changes the model
    assert top1(got) >= 0.95  # llama.cpp (Q4_1 base) + GGUF LoRA agrees with PEFT (fp32)
    # q/k rows must follow llama.cpp's rotary order: without the permutation it drifts away
    assert np.abs(got - peft_logits).mean() < 0.5 * np.abs(wrong - peft_logits).mean()


def test_conversion_refuses_what_llamacpp_cannot_use(random_adapter: tuple, base_dir: Path,
                                                     tmp_path: Path) -> None:
    folder = random_adapter[0]
    other = tmp_path / "base"
    other.mkdir()
    config = json.loads((base_dir / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ValueError, match="llama-architecture"):
        peft_to_gguf(folder, other, tmp_path / "x.gguf")
