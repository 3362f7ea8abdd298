"""The fixed-prompt comparison of vllm.vllm_cpu: mutation prompts built as the loop builds them,
greedy completions on one backend with the base model and then with an adapter hot-loaded, and
the fallback adapter (a length reward) when the run's training round learned nothing."""

from __future__ import annotations

import asyncio
import math
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.harness.paths import PROBLEMS


def load_avg() -> str:
    """Returns the 1/5/15-minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fixed_prompts(db: Any, run_id: int, count: int) -> list[list[Any]]:
    """Returns up to `count` mutation prompts built as the loop builds them, one per distinct
    scored program of the run (oldest first; the first is the initial program's)."""
    from sqlalchemy import select

    from service.db.models import ProgramRow
    from service.evolution.prompts import ProgramView, PromptContext, build_prompt
    from service.problems.load import load_problem

    problem = load_problem(PROBLEMS / "quickstart")
    with db.session() as s:
        rows = s.scalars(select(ProgramRow).where(ProgramRow.run_id == run_id,
                                                  ProgramRow.status == "ok")
                         .order_by(ProgramRow.id)).all()
        parents = list({r.code_hash: ProgramView(r.code, r.score, dict(r.metrics or {}),
                                                 dict(r.artifacts or {})) for r in rows}.values())
    return [build_prompt(PromptContext(problem.name, problem.description, problem.score_metric,
                                       problem.direction, "rewrite", view),
                         lambda text: math.ceil(len(text) / 3.5), 3000)
            for view in parents[:count]]


async def measure(llm: Any, prompts: list[list[Any]], max_tokens: int) -> dict[str, Any]:
    """Returns greedy completions of prompts one at a time, then all at once, with tokens/s."""
    from service.llm.base import Sampling

    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens, seed=0)
    await llm.generate([prompts[0]], 1, Sampling(temperature=0.0, max_tokens=8, seed=0))  # warm
    start, texts, tokens = time.perf_counter(), [], 0
    for p in prompts:
        c = (await llm.generate([p], 1, greedy))[0][0]
        texts.append(c.text)
        tokens += c.completion_tokens
    seq_s = time.perf_counter() - start
    start = time.perf_counter()
    batch = await llm.generate(prompts, 1, greedy)
    batch_s = time.perf_counter() - start
    batch_tokens = sum(c[0].completion_tokens for c in batch)
    again = (await llm.generate([prompts[0]], 1, greedy))[0][0].text
    return {"texts": texts, "seq_tokens": tokens, "seq_s": seq_s, "seq_tok_s": tokens / seq_s,
            "batch_tokens": batch_tokens, "batch_s": batch_s,
            "batch_tok_s": batch_tokens / batch_s, "repeat_identical": again == texts[0],
            "adapter": llm.adapter, "load": load_avg()}


async def base_and_adapter(llm: Any, info: Any, prompts: list[list[Any]],
                           max_tokens: int) -> dict[str, Any]:
    """Measures llm on the base model, hot-loads info with publish(), measures again."""
    from service.rl.adapters import publish

    base = await measure(llm, prompts, max_tokens)
    start = time.perf_counter()
    await asyncio.to_thread(publish, llm, info)
    load_s = time.perf_counter() - start
    tuned = await measure(llm, prompts, max_tokens)
    changed = sum(a != b for a, b in zip(base["texts"], tuned["texts"], strict=True))
    await llm.aclose()
    return {"base": base, "adapter": tuned, "adapter_load_s": load_s,
            "prompts_changed": changed, "fixed_prompt_changed": base["texts"][0] !=
            tuned["texts"][0]}


def length_reward(completions: list[Any], **_: Any) -> list[float]:
    """Rewards longer answers (tests/service/rl/test_trainer.py): varies within a group."""
    return [len(c[0]["content"]) / 50 for c in completions]


def library_adapter(db: Any, run_id: int, base_dir: Path, prompts: list[list[Any]],
                    lr: float, home: Path) -> Any:
    """Trains and records the run's next adapter version with service.rl.grpo.grpo_train on the
    fixed prompts and a length reward (the RL tests' tiny config: 3 steps of 4 x 16 tokens)."""
    import torch

    from service.config import RLConfig
    from service.llm.models import load_base_model
    from service.rl.adapters import latest_adapter, save_adapter
    from service.rl.grpo import grpo_train

    rl = RLConfig(steps=3, group_size=4, max_completion_tokens=16, learning_rate=lr, threads=1)
    model, tokenizer = load_base_model(base_dir)
    torch.manual_seed(0)
    rows = [{"prompt": [{"role": m.role, "content": m.content} for m in prompts[i % len(prompts)]]}
            for i in range(rl.steps)]
    previous = latest_adapter(db, run_id)
    version = 1 if previous is None else previous.version + 1
    folder = home / "adapters" / f"run{run_id}" / f"v{version}"
    started = time.perf_counter()
    trained = grpo_train(model, tokenizer, rows, length_reward, rl, rl.steps, folder / "trainer")
    return save_adapter(db, trained, run_id=run_id, name=f"run{run_id}-v{version}",
                        version=version, steps=rl.steps, base_model=str(base_dir), folder=folder,
                        reward_stats={"reward": "length", "seconds": time.perf_counter() - started},
                        alpha=rl.lora_alpha)
