"""Creates runs and drives them: assembles problem, config, LLM backend, executor for the engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluators import tree
from service.config import RunConfig, build_run_config, read_toml
from service.db import Database
from service.db.models import ProblemRow, ProgramRow, RunRow
from service.db.queries import add_problem, add_run, best_program
from service.db.status import RunStatus
from service.db.stored import load_run
from service.edits.apply import Format
from service.evolution.engine import Engine
from service.evolution.prompts import ProgramView, PromptContext, smallest_prompt_tokens
from service.evolution.report import Progress
from service.evolution.reverify import reverify_run
from service.execution.base import Executor
from service.execution.dispatch import make_executor
from service.llm.base import LLMBackend
from service.llm.factory import make_backend, resolve_models
from service.problems.load import Problem
from service.rl.schedule import RLSchedule
from service.settings import Settings
from service.telemetry.logs import log_context

log = logging.getLogger("evoforge.runs")
MIN_ANSWER_TOKENS = 256  # an advisory max_tokens is never fitted below this


def run_config_for(problem: Problem, config_file: Path | None,
                   overrides: dict[str, Any]) -> RunConfig:
    """Returns the run config: defaults < problem.toml [run] < RUN.toml < command-line overrides."""
    layers: list[dict[str, Any]] = [problem.run_defaults]
    if config_file is not None:
        layers.append(read_toml(config_file))
    layers.append(overrides)
    source = f"{problem.path / 'problem.toml'}" + (f" + {config_file}" if config_file else "")
    return build_run_config(*layers, source=source)


def create_run(db: Database, problem: Problem, cfg: RunConfig) -> int:
    """Stores the problem and a new run with its full config; returns the run id."""
    with db.session() as s:
        prow = add_problem(s, problem)
        return add_run(s, prow.id, cfg.model_dump(mode="json"), cfg.seed).id


def update_config(db: Database, run_id: int, cfg: RunConfig) -> None:
    """Stores a changed config with the run (e.g. a larger budget on resume)."""
    with db.session() as s:
        s.get(RunRow, run_id).config = cfg.model_dump(mode="json")


def make_engine(db: Database, run_id: int, problem: Problem, cfg: RunConfig, llm: LLMBackend,
                executor: Executor, settings: Settings,
                on_progress: Callable[[Progress], None] | None = None) -> Engine:
    """Returns the engine of a run, with test-time RL when rl.enabled."""
    training = RLSchedule(db, run_id, cfg.rl, llm, settings) if cfg.rl.enabled else None
    return Engine(db, run_id, problem, cfg, llm, executor, on_progress, training)


async def drive(db: Database, run_id: int, settings: Settings,
                on_progress: Callable[[Progress], None] | None = None,
                on_engine: Callable[[Engine], None] | None = None) -> RunRow:
    """Runs the engine on a stored run until it stops; returns the final run row.
    on_engine receives the engine before it starts (controllers use it to pause/stop it).
    What is logged meanwhile, in this task and those it starts, carries the run's id."""
    with log_context(run_id=run_id):
        return await _drive(db, run_id, settings, on_progress, on_engine)


async def _drive(db: Database, run_id: int, settings: Settings,
                 on_progress: Callable[[Progress], None] | None,
                 on_engine: Callable[[Engine], None] | None) -> RunRow:
    _, problem, stored = load_run(db, run_id, settings)
    cfg = resolve_models(stored, settings)  # models picked by name become the operator's
    llm = make_backend(cfg.llm, settings, seed=cfg.seed)
    cfg = fit_advisory(problem, cfg, llm.context_window, llm.count_tokens)
    executor = make_executor(cfg.evaluation, db, settings.broker)
    interrupted = True
    try:
        engine = make_engine(db, run_id, problem, cfg, llm, executor, settings, on_progress)
        if on_engine is not None:
            on_engine(engine)
        row = await engine.run()
        interrupted = False
        if row.status == RunStatus.COMPLETED and cfg.evaluation.reverify_top_k:
            # the best programs are scored again in a fresh sandbox: their scores get a tier
            await asyncio.to_thread(reverify_run, db, run_id, problem, cfg)
        return row
    finally:
        await executor.aclose(kill=interrupted)  # on Ctrl-C, running evaluations are killed
        await llm.aclose()


def fit_advisory(problem: Problem, cfg: RunConfig, window: int,
                 count_tokens: Callable[[str], int]) -> RunConfig:
    """Returns cfg with an advisory llm.max_tokens (read from a config written for another model,
    e.g. OpenEvolve's config.yaml) fitted to the serving model's context window: at most half of
    it, less when the initial program's smallest prompt (with room to grow by a quarter) needs
    more than the other half, never under MIN_ANSWER_TOKENS; says so once. A max_tokens the user
    set stays as it is (strict); the run config does not record where a value came from, so one
    equal to the file's counts as it."""
    hinted = problem.advisory.get("llm.max_tokens")
    window = cfg.llm.context_window or window
    if hinted is None or cfg.llm.max_tokens != hinted:
        return cfg
    prompt = max(smallest_prompt_tokens(initial_context(problem, cfg, fmt), count_tokens)
                 for fmt in ("diff", "rewrite"))
    cap = max(min(window // 2, window - prompt - prompt // 4 - 16), min(MIN_ANSWER_TOKENS, hinted))
    if hinted <= cap:
        return cfg
    log.warning("llm.max_tokens = %d comes from %s, written for another model; the model here "
                "has a %d-token context and the smallest prompt takes %d, so each answer gets at "
                "most %d tokens and each prompt the rest (set llm.max_tokens in RUN.toml to "
                "choose another value)", hinted, problem.path.name + "/config.yaml", window,
                prompt, cap)
    return cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"max_tokens": cap})})


def initial_context(problem: Problem, cfg: RunConfig, fmt: Format) -> PromptContext:
    """Returns the prompt context of the problem's initial program as the parent, in fmt."""
    return PromptContext(problem_name=problem.name, description=problem.description,
                         score_metric=problem.score_metric, direction=problem.direction, fmt=fmt,
                         parent=ProgramView(problem.initial_code),
                         system_message=cfg.llm.system_message, best_known=problem.best_known)


def write_best(db: Database, run_id: int, out: Path) -> tuple[ProgramRow, Path] | None:
    """Writes the run's best program to out (a folder program: the folder out without its
    suffix); returns its row and where it went (None when nothing scored)."""
    with db.session() as s:
        run = s.get(RunRow, run_id)
        if run.best_program_id is not None:  # the engine's choice (the population's rules)
            best = s.get(ProgramRow, run.best_program_id)
        else:
            best = best_program(s, run_id, s.get(ProblemRow, run.problem_id).direction)
    if best is None:
        return None
    return best, tree.place(best.code, out)
