"""What the engine sees of an executor (the Executor Protocol) and the job that scores a program."""

from __future__ import annotations

from typing import Protocol

from evaluators.jobs import EvalJob, EvalResult
from service.config import EvaluationConfig
from service.problems.load import Problem


class ExecutorUnavailable(RuntimeError):
    """The executor cannot take work now (e.g. the broker is down); the candidate stays pending."""


class Executor(Protocol):
    """Scores jobs somewhere; the engine only sees this."""

    writes_results: bool  # True: workers close the evaluation rows themselves (Celery)

    async def evaluate(self, job: EvalJob) -> EvalResult:
        """Returns the result of one job; failures are results, never exceptions."""
        ...

    async def aclose(self, kill: bool = False) -> None:
        """Refuses new evaluations and waits for running ones (killing them first when kill)."""
        ...


def make_job(problem: Problem, code: str, cfg: EvaluationConfig, *, program_id: int | None = None,
             evaluation_id: int | None = None, seed: int = 0) -> EvalJob:
    """Returns the job that scores code on problem under cfg's limits, cascade and isolation."""
    scorer = str(problem.scorer_path.relative_to(problem.path)) if problem.scorer_path else ""
    return EvalJob(code=code, problem_dir=str(problem.path),
                   evaluator_file=str(problem.evaluator_path), score_metric=problem.score_metric,
                   score_fallback_mean=problem.score_fallback_mean,
                   timeout_s=cfg.timeout_s, memory_mb=cfg.memory_mb,
                   cascade_thresholds=list(cfg.cascade_thresholds),
                   cascade_gates=cfg.cascade_gates, program_id=program_id,
                   evaluation_id=evaluation_id, seed=seed, scorer=scorer, entry=problem.entry or "",
                   prefork=cfg.prefork, isolation=cfg.isolation)
