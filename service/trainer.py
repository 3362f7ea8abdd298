"""Test-time RL of the mutation model: TRL's GRPOTrainer with a PEFT LoRA adapter, called as is.

One training round: prompts from the run's database, a group of completions per prompt written
by the policy (the base model plus the run's latest adapter), each completion stored and scored as
a child (service/rollouts.py), GRPO steps on those rewards, and the new adapter saved, recorded
and published to the serving backend (service/adapters.py).
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.adapters import AdapterInfo, latest_adapter, publish, save_adapter
from service.basemodel import base_model_dir, load_base_model
from service.config import RLConfig, Settings
from service.db import Database
from service.rollouts import EvolutionReward, training_prompts

log = logging.getLogger("evoforge.trainer")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@dataclass
class RoundReport:
    """What one training round did."""

    adapter: AdapterInfo
    seconds: float
    peak_rss_mb: float
    reward_stats: dict[str, float]


def lora_config(rl: RLConfig) -> Any:
    """Returns the PEFT LoRA config for rl: rank r on the attention projections q, k, v, o."""
    from peft import LoraConfig

    return LoraConfig(r=rl.lora_r, lora_alpha=rl.lora_alpha, lora_dropout=0.0,
                      target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")


def grpo_train(model: Any, tokenizer: Any, rows: list[dict[str, Any]],
               reward_fn: Callable[..., list[float]], rl: RLConfig, steps: int, work_dir: Path,
               seed: int = 0) -> Any:
    """Runs `steps` GRPO steps on rows ({"prompt": messages, ...}); returns the trained PeftModel.

    model is a plain model (a new LoRA adapter is added) or a PeftModel whose adapter trains on.
    """
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(rl.threads or max(1, (os.cpu_count() or 2) // 2))
    gpu = torch.cuda.is_available()  # on CPU: float32 (bf16 autocast is slower there)
    args = GRPOConfig(
        output_dir=str(work_dir), max_steps=steps, learning_rate=rl.learning_rate,
        per_device_train_batch_size=rl.group_size * rl.prompts_per_step,
        num_generations=rl.group_size, max_completion_length=rl.max_completion_tokens,
        temperature=rl.temperature, beta=0.0, use_cpu=not gpu, bf16=gpu, fp16=False,
        gradient_checkpointing=False,  # a small model fits; recomputing costs ~30% per step
        report_to="none", save_strategy="no", logging_steps=1, seed=seed,
        shuffle_dataset=False, disable_tqdm=True, dataloader_num_workers=0)
    trainer = GRPOTrainer(
        model=model, reward_funcs=[reward_fn], args=args, train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=None if isinstance(model, PeftModel) else lora_config(rl))
    trainer.train()
    return trainer.model


def train_round(db: Database, run_id: int, settings: Settings, steps: int | None = None,
                llm: Any = None, rl: RLConfig | None = None) -> RoundReport:
    """Trains the run's mutation model for one round, records the adapter, publishes it to llm."""
    from peft import PeftModel

    from service.launch import load_run

    started = time.perf_counter()
    _, problem, cfg = load_run(db, run_id, settings)
    rl = rl or cfg.rl
    steps = steps or rl.steps
    base = base_model_dir(_gguf_of(cfg.llm.backend, cfg.llm.model, settings))
    prompts = training_prompts(db, run_id, steps * rl.prompts_per_step, rl.recent_programs,
                               seed=cfg.seed + _count_adapters(db, run_id))
    previous = latest_adapter(db, run_id)
    version = 1 if previous is None else previous.version + 1
    name = f"run{run_id}-v{version}"
    model, tokenizer = load_base_model(base)
    if previous is not None:  # training goes on from the adapter the run uses now
        model = PeftModel.from_pretrained(model, previous.path, is_trainable=True)
    reward_fn = EvolutionReward(db, run_id, problem, cfg, model=base.name.removesuffix("-hf"),
                                adapter=f"{name}-training",
                                max_completion_tokens=rl.max_completion_tokens)
    rows = [{"prompt": p.messages, "parent_id": p.parent_id} for p in prompts]
    folder = adapters_home(settings) / f"run{run_id}" / f"v{version}"
    trained = grpo_train(model, tokenizer, rows, reward_fn, rl, steps, folder / "trainer",
                         seed=cfg.seed + version)
    info = save_adapter(db, trained, run_id=run_id, name=name, version=version, steps=steps,
                        base_model=str(base), folder=folder, reward_stats=reward_fn.stats(),
                        alpha=rl.lora_alpha)
    if llm is not None:
        publish(llm, info)
    report = RoundReport(info, time.perf_counter() - started, _peak_rss_mb(), reward_fn.stats())
    log.info("run %s: adapter %s after %d GRPO steps in %.0f s (reward mean %.3f)", run_id, name,
             steps, report.seconds, report.reward_stats.get("mean", float("nan")))
    return report


def adapters_home(settings: Settings) -> Path:
    """Returns the folder adapters are saved under ($EVOFORGE_HOME/adapters)."""
    return (settings.home / "adapters").resolve()


def _gguf_of(backend: str, model: str | None, settings: Settings) -> Path | None:
    """Returns the GGUF the run's llamacpp backend serves (None: the embedded SmolLM2)."""
    if backend == "llamacpp" and model:
        return Path(model).expanduser()
    return settings.model_path


def _count_adapters(db: Database, run_id: int) -> int:
    info = latest_adapter(db, run_id)
    return 0 if info is None else info.version


def _peak_rss_mb() -> float:
    """Returns this process's peak resident memory in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if os.name == "posix" else 0.0


class RLSchedule:
    """The engine's hook: when rl.enabled, a training round every rl.every_n_children
    evaluations, run only while nothing is in flight; the new adapter is hot-loaded into the
    run's backend, so the next children are written by the trained model."""

    def __init__(self, db: Database, run_id: int, rl: RLConfig, llm: Any,
                 settings: Settings | None = None) -> None:
        self.db, self.run_id, self.rl, self.llm = db, run_id, rl, llm
        self.settings = settings or Settings()
        self._next: int | None = None

    def due(self, evaluations: int) -> bool:
        """Returns True when a training round should run before more children are proposed."""
        if not self.rl.enabled:
            return False
        if self._next is None:
            self._next = (evaluations // self.rl.every_n_children + 1) * self.rl.every_n_children
        return evaluations >= self._next

    async def train(self, evaluations: int) -> list[Any]:
        """Runs one round in a thread and publishes its adapter; returns the programs it added."""
        import asyncio

        from sqlalchemy import func, select

        from service.db.models import ProgramRow, RunRow

        self._next = (evaluations // self.rl.every_n_children + 1) * self.rl.every_n_children
        with self.db.session() as s:
            last = s.scalar(select(func.max(ProgramRow.id)).where(
                ProgramRow.run_id == self.run_id)) or 0
            run = s.get(RunRow, self.run_id)
            budget = (run.config.get("budget") or {}).get("iterations")
        per_step = self.rl.group_size * self.rl.prompts_per_step
        steps = self.rl.steps if budget is None else min(
            self.rl.steps, (budget - run.iterations) // per_step)  # a round's children count
        if steps < 1:
            log.info("run %s: RL round skipped, the budget has no room for a step", self.run_id)
            return []
        try:
            report = await asyncio.to_thread(train_round, self.db, self.run_id, self.settings,
                                             steps)
            if hasattr(self.llm, "load_adapter"):
                await asyncio.to_thread(publish, self.llm, report.adapter)
            else:
                log.warning("run %s: the %s backend cannot hot-load adapters; %s is recorded "
                            "but not used", self.run_id, getattr(self.llm, "name", "?"),
                            report.adapter.name)
        except Exception:  # a failed round must not stop the run: it is logged and skipped
            log.exception("run %s: RL training round failed; evolution goes on", self.run_id)
        with self.db.session() as s:
            return list(s.scalars(select(ProgramRow).where(
                ProgramRow.run_id == self.run_id, ProgramRow.id > last).order_by(ProgramRow.id)))
