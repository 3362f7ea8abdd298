"""Test-time RL of the mutation model: TRL's GRPOTrainer with a PEFT LoRA adapter, called as is.

One training round: prompts from the run's database, a group of completions per prompt written
by the policy (the base model plus the run's latest adapter), each completion stored and scored as
a child (service/rl/rollouts.py), GRPO steps on those rewards, and the new adapter saved, recorded
and published to the serving backend (service/rl/adapters.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.config import ConfigError, RLConfig, RunConfig
from service.db import Database
from service.db.stored import load_run
from service.evolution.training import Report, RoundProgress, ignore
from service.llm.factory import resolve_models
from service.llm.models import base_model_dir, default_model_path, load_base_model
from service.rl.adapters import AdapterInfo, latest_adapter, publish, save_adapter
from service.rl.quiet import STEPS, round_log, trainer_output_to
from service.rl.rollouts import EvolutionReward, training_prompts
from service.settings import Settings
from service.telemetry import metrics

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
               seed: int = 0, on_step: Callable[[int, float | None], None] | None = None,
               micro_batch: int | None = None, gguf: Path | None = None) -> Any:
    """Runs `steps` GRPO steps on rows ({"prompt": messages, ...}); returns the trained PeftModel.

    model is a plain model (a new LoRA adapter is added) or a PeftModel whose adapter trains on.
    on_step(step, reward mean) is called after each step; each step's metric dict is logged to
    quiet.STEPS (TRL's own printer of it is removed). micro_batch: completions per forward and
    backward, accumulated over a step's batch (default: 1 on CPU, the whole batch on a GPU).
    gguf: the GGUF the model was converted from, which llama.cpp then samples the completions
    from (rl.generator, service/rl/generation.py); None: HF generate.
    """
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from service.rl.generation import LlamaCppRollout, pick_generator

    threads = training_threads(rl)
    torch.set_num_threads(threads)
    gpu = torch.cuda.is_available()  # on CPU: float32 (bf16 autocast is slower there)
    batch = rl.group_size * rl.prompts_per_step  # the completions of one optimizer step
    micro = min(batch, micro_batch or (batch if gpu else 1))
    if batch % micro:
        raise ValueError(f"micro_batch {micro} does not divide the step's {batch} completions")
    # On CPU one completion per forward/backward, accumulated over the step: the same update
    # (TRL's default loss normalises by the whole batch's tokens) with a quarter of the
    # activations alive (peak RSS 5.3 -> 2.2 GB at 4 x 256 tokens: benchmarks/perf/grpo_step.py).
    # The batch is still generated at once, and with steps_per_generation (= the accumulation)
    # aligned to the step, TRL makes no second log-prob pass for the old policy.
    args = GRPOConfig(
        output_dir=str(work_dir), max_steps=steps, learning_rate=rl.learning_rate,
        per_device_train_batch_size=micro, gradient_accumulation_steps=batch // micro,
        num_generations=rl.group_size, max_completion_length=rl.max_completion_tokens,
        temperature=rl.temperature, beta=0.0, use_cpu=not gpu, bf16=gpu, fp16=False,
        gradient_checkpointing=False,  # a small model fits; recomputing costs ~30% per step
        report_to="none", save_strategy="no", logging_steps=1, seed=seed,
        shuffle_dataset=False, disable_tqdm=True, dataloader_num_workers=0)
    rollout = None
    llama = model.config.model_type == "llama"  # the GGUF LoRA conversion knows these only
    if pick_generator(rl, gguf if llama else None, gpu) == "llama_cpp" and gguf is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        rollout = LlamaCppRollout(gguf, work_dir, threads, seed=seed)
    try:
        with warnings.catch_warnings():  # "rollout_func is experimental", once per trainer
            warnings.filterwarnings("ignore", message=".*rollout_func.*", category=UserWarning)
            trainer = GRPOTrainer(
                model=model, reward_funcs=[reward_fn], args=args,
                train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                peft_config=None if isinstance(model, PeftModel) else lora_config(rl),
                rollout_func=rollout)
        trainer.remove_callback(PrinterCallback)  # it prints every step's raw dict on stdout
        trainer.add_callback(_step_report(on_step))
        trainer.train()
    finally:
        if rollout is not None:
            rollout.close()
    return trainer.model


def training_threads(rl: RLConfig, window_s: float = 0.25) -> int:
    """Returns the CPU threads of a GRPO step (torch's and llama.cpp's): rl.threads, else the cores
    idle now (measured over window_s, at least one). On a quiet 2-core machine two threads make a
    step 20 s instead of 36 s; on cores other work keeps busy a second thread spins for its core
    and costs ~8x (benchmarks/perf/grpo_step.py)."""
    if rl.threads:
        return rl.threads
    cores = os.cpu_count() or 2
    return max(1, min(cores, round(idle_cores(cores, window_s))))


def idle_cores(cores: int, window_s: float = 0.25) -> float:
    """Returns how many of the cores were idle over the next window_s (/proc/stat); where that
    cannot be read, the cores less the 1-minute load average (which lags a finished job)."""
    def idle_and_total() -> tuple[int, int]:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, of all

    try:
        idle0, total0 = idle_and_total()
        time.sleep(window_s)
        idle1, total1 = idle_and_total()
    except (OSError, ValueError, IndexError):
        return max(0.0, cores - os.getloadavg()[0])
    return cores * (idle1 - idle0) / max(1, total1 - total0)


def _step_report(on_step: Callable[[int, float | None], None] | None) -> Any:
    """Returns a TrainerCallback that logs each step's metrics and reports the step."""
    from transformers import TrainerCallback

    steps_log = logging.getLogger(STEPS)

    class StepReport(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
                   **kwargs: Any) -> None:
            if not logs:
                return
            steps_log.info("step %d/%d %s", state.global_step, state.max_steps, json.dumps(
                logs, default=str))
            if "reward" in logs:
                metrics.rl_step()
                if on_step is not None:
                    on_step(state.global_step, logs["reward"])

    return StepReport()


def train_round(db: Database, run_id: int, settings: Settings, steps: int | None = None,
                llm: Any = None, rl: RLConfig | None = None, adapters_dir: Path | None = None,
                guard: Callable[[], None] | None = None, report: Report = ignore) -> RoundReport:
    """Trains the run's mutation model for one round, records the adapter, publishes it to llm.

    adapters_dir replaces $EVOFORGE_HOME/adapters; guard runs before every batch of rollouts is
    written (an external trainer checks there that its claim on the round still holds); report
    hears the round's phase and steps. The trainer libraries' own output goes to the run's
    rl.log (quiet.round_log), not to the terminal.
    """
    started = time.perf_counter()
    log_file = round_log(settings.home, run_id)
    try:
        with trainer_output_to(log_file):
            done = _train_round(db, run_id, settings, steps, llm, rl, adapters_dir, guard,
                                _Reporter(report, started, str(log_file)))
    except BaseException:
        metrics.rl_round("failed", time.perf_counter() - started)
        raise
    metrics.rl_round("done", done.seconds)
    return done


class _Reporter:
    """Tells a Report the round's phase, step and seconds so far."""

    def __init__(self, report: Report, started: float, log_file: str) -> None:
        self.report, self.started, self.log_file = report, started, log_file
        self.steps = self.step = 0
        self.reward: float | None = None

    def __call__(self, phase: str, step: int | None = None, reward: float | None = None) -> None:
        """Reports phase (at step, with the step's reward mean; else the last step's)."""
        if step is not None:
            self.step, self.reward = step, reward
        self.report(RoundProgress(phase, self.step, self.steps, self.reward,
                                  time.perf_counter() - self.started, self.log_file))


def _train_round(db: Database, run_id: int, settings: Settings, steps: int | None, llm: Any,
                 rl: RLConfig | None, adapters_dir: Path | None,
                 guard: Callable[[], None] | None, say: _Reporter) -> RoundReport:
    from peft import PeftModel

    started = say.started
    _, problem, stored = load_run(db, run_id, settings)
    cfg = resolve_models(stored, settings)  # a model picked by name brings its base_model
    rl = rl or cfg.rl
    steps = say.steps = steps or rl.steps
    say("loading")
    base = trainable_base(cfg, settings)
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
    folder = (adapters_dir or adapters_home(settings)).resolve() / f"run{run_id}" / f"v{version}"
    scorer = reward_fn if guard is None else _Guarded(reward_fn, guard)
    say("training")
    trained = grpo_train(model, tokenizer, rows, scorer, rl, steps, folder / "trainer",
                         seed=cfg.seed + version, gguf=base_gguf(cfg, settings),
                         on_step=lambda step, reward: say("training", step, reward))
    say("saving")
    info = save_adapter(db, trained, run_id=run_id, name=name, version=version, steps=steps,
                        base_model=str(base), folder=folder, reward_stats=reward_fn.stats(),
                        alpha=rl.lora_alpha, gguf=serves_gguf(cfg) or _llama(base))
    if llm is not None:
        publish(llm, info)
    report = RoundReport(info, time.perf_counter() - started, _peak_rss_mb(), reward_fn.stats())
    log.info("run %s: adapter %s after %d GRPO steps in %.0f s (reward mean %.3f)", run_id, name,
             steps, report.seconds, report.reward_stats.get("mean", float("nan")))
    return report


class _Guarded:
    """A reward function that runs guard before its rollouts are written and scored."""

    __name__ = "evolution_reward"

    def __init__(self, reward_fn: Callable[..., list[float]], guard: Callable[[], None]) -> None:
        self.reward_fn, self.guard = reward_fn, guard

    def __call__(self, *args: Any, **kwargs: Any) -> list[float]:
        """Returns the rewards, once guard has passed."""
        self.guard()
        return self.reward_fn(*args, **kwargs)


def adapters_home(settings: Settings) -> Path:
    """Returns the folder adapters are saved under ($EVOFORGE_HOME/adapters)."""
    return (settings.home / "adapters").resolve()


def trainable_base(cfg: RunConfig, settings: Settings) -> Path:
    """Returns the HF folder adapters are trained on: rl.base_model, else the run's GGUF
    converted once (a server that serves another model refuses the adapters: say so)."""
    if cfg.rl.base_model:
        return _base_folder(cfg.rl.base_model)
    if cfg.llm.backend == "openai":
        log.warning("rl.base_model is not set: training adapters for the embedded model; a "
                    "server serving another model (llm.model %r) will refuse them", cfg.llm.model)
    return base_model_dir(base_gguf(cfg, settings))


def base_gguf(cfg: RunConfig, settings: Settings) -> Path | None:
    """Returns the GGUF the trainable base is converted from (None: rl.base_model, an HF model)."""
    if cfg.rl.base_model:
        return None
    return _gguf_of(cfg.llm.backend, cfg.llm.model, settings) or default_model_path()


def _base_folder(name: str) -> Path:
    """Returns the HF folder of rl.base_model: a local folder, or a hub id (e.g. the VLLM_MODEL
    a server serves) taken from the Hugging Face cache, downloaded where the network allows."""
    folder = Path(name).expanduser()
    if (folder / "config.json").is_file():
        return folder
    if folder.exists() or not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        raise ConfigError(f"rl.base_model '{name}' is not a Hugging Face model folder (no "
                          "config.json) nor a hub id; give the folder or id your server serves")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors",
                                                            "*.model", "*.txt"]))
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, gated: all say the same
        raise ConfigError(f"rl.base_model '{name}': not in the Hugging Face cache and not "
                          f"downloadable here ({type(exc).__name__}); download it on this host "
                          "(huggingface-cli download) or give a local folder") from None


def _llama(base: Path) -> bool:
    """Returns True for a llama-architecture base (its adapters convert to a GGUF LoRA)."""
    try:
        return json.loads((base / "config.json").read_text()).get("model_type") == "llama"
    except (OSError, ValueError):
        return False


def serves_gguf(cfg: RunConfig) -> bool:
    """Returns True when a llama.cpp backend serves the run (it takes adapters as GGUF LoRA)."""
    return cfg.llm.backend == "llamacpp" and not cfg.llm.models or any(
        m.backend == "llamacpp" for m in cfg.llm.models)


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
