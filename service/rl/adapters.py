"""Adapter versions: save a trained PEFT LoRA, convert it to a GGUF LoRA, record it, publish it.

An adapter folder holds PEFT's files (adapter_config.json, adapter_model.safetensors: what the
transformers backend and vLLM load) and `adapter.gguf` (what llama.cpp loads). The GGUF is
written here with the `gguf` package: llama.cpp keeps attention q/k rows in its own rotary order,
so LoRA B of q_proj and k_proj is permuted the same way; A is unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from service.db import Database
from service.db.models import AdapterRow
from service.llm.base import AdapterSupport, LLMBackend

GGUF_NAME = "adapter.gguf"
_PROJ = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
         "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


@dataclass(frozen=True)
class AdapterInfo:
    """A recorded adapter version."""

    id: int
    run_id: int
    name: str
    version: int
    path: Path
    base_model: str
    steps: int
    reward_stats: dict[str, Any]

    @property
    def gguf(self) -> Path:
        """Returns the GGUF LoRA file llama.cpp loads."""
        return self.path / GGUF_NAME


def _info(row: AdapterRow) -> AdapterInfo:
    return AdapterInfo(row.id, row.run_id, row.name, row.version, Path(row.path), row.base_model,
                       row.steps, dict(row.reward_stats or {}))


def save_adapter(db: Database, model: Any, *, run_id: int, name: str, version: int, steps: int,
                 base_model: str, folder: Path, reward_stats: dict[str, Any],
                 alpha: float, gguf: bool = True) -> AdapterInfo:
    """Saves a PeftModel's adapter (PEFT, plus a GGUF LoRA for llama.cpp when gguf) into folder
    and records the version."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    if gguf:
        peft_to_gguf(folder, Path(base_model), folder / GGUF_NAME, alpha)
    with db.session() as s:
        row = AdapterRow(run_id=run_id, name=name, version=version, base_model=base_model,
                         steps=steps, reward_stats=reward_stats, path=str(folder))
        s.add(row)
        s.flush()
        return _info(row)


def latest_adapter(db: Database, run_id: int) -> AdapterInfo | None:
    """Returns the run's newest adapter version, or None before the first."""
    with db.session() as s:
        row = s.scalars(select(AdapterRow).where(AdapterRow.run_id == run_id)
                        .order_by(AdapterRow.version.desc()).limit(1)).first()
        return None if row is None else _info(row)


def list_adapters(db: Database, run_id: int) -> list[AdapterInfo]:
    """Returns the run's adapter versions, oldest first."""
    with db.session() as s:
        rows = s.scalars(select(AdapterRow).where(AdapterRow.run_id == run_id)
                         .order_by(AdapterRow.version))
        return [_info(r) for r in rows]


def publish(llm: LLMBackend, info: AdapterInfo) -> None:
    """Hot-loads the adapter into a backend that takes adapters (llamacpp, transformers, openai)."""
    if llm.adapters is AdapterSupport.NONE:
        raise ValueError(f"the {llm.name} backend cannot load LoRA adapters; use llm.backend "
                         "llamacpp, transformers or openai")
    llm.load_adapter(info.name, info.path)


def rotary_permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """Returns rows (out, ...) reordered per head from HF's rotary layout to llama.cpp's."""
    out = rows.shape[0]
    half = out // n_head // 2
    # HF keeps each head's two rotary halves as [x0..x_{d/2}, y0..y_{d/2}]; GGUF interleaves them.
    per_head = rows.reshape(n_head, 2, half, *rows.shape[1:])
    return np.ascontiguousarray(np.swapaxes(per_head, 1, 2).reshape(rows.shape))


def peft_to_gguf(adapter_dir: Path, base_dir: Path, out: Path, alpha: float | None = None) -> Path:
    """Writes the PEFT LoRA in adapter_dir as a llama.cpp GGUF LoRA at out; returns out."""
    from safetensors.numpy import load_file

    peft_cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    alpha = float(alpha if alpha is not None else peft_cfg["lora_alpha"])
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    try:
        return write_gguf_lora(tensors, json.loads((base_dir / "config.json").read_text()), out,
                               alpha)
    except ValueError as exc:
        raise ValueError(f"{adapter_dir}: {exc}") from None


def write_gguf_lora(tensors: dict[str, np.ndarray], config: dict[str, Any], out: Path,
                    alpha: float) -> Path:
    """Writes LoRA tensors (PEFT names, e.g. a PeftModel's state dict) for the base model of HF
    config (its config.json as a dict) as a llama.cpp GGUF LoRA at out; returns out."""
    import gguf

    if config.get("model_type") != "llama":
        raise ValueError(f"base model_type {config.get('model_type')!r}; the GGUF LoRA "
                         "conversion knows llama-architecture models only (SmolLM2, Llama)")
    heads = {"attn_q": config["num_attention_heads"],
             "attn_k": config.get("num_key_value_heads") or config["num_attention_heads"]}
    writer = gguf.GGUFWriter(str(out), arch="llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    written = 0
    for key in sorted(tensors):
        match = _KEY.search(key)
        if match is None or match.group(2) not in _PROJ:
            raise ValueError(f"LoRA tensor {key} has no llama.cpp counterpart; "
                             f"train LoRA on {', '.join(_PROJ)} only")
        layer, proj, ab = match.groups()
        target = _PROJ[proj]
        data = np.asarray(tensors[key], dtype=np.float32)
        if ab == "B" and target in heads:
            data = rotary_permute(data, heads[target])
        writer.add_tensor(f"blk.{layer}.{target}.weight.lora_{ab.lower()}", data)
        written += 1
    if not written:
        raise ValueError("no LoRA tensors found (adapter_model.safetensors is empty)")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
