"""evoforge as the benchmarks run it: one run (a CLI process or in-process), read back afterwards.

Every benchmark that needs a best-so-far curve gets it here, from the run's own SQLite file:
`run_cli` / `run_in_process` return a FinishedRun, whose curves (by iteration, by LLM sample,
over time) follow the direction stored with the run's problem (its problem.toml's `direction`).
`strict_score` re-scores a program with `evoforge eval` (our sandbox and the problem's strict
verifier).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from benchmarks.harness.curves import best_curve, running_best, time_curve
from benchmarks.harness.paths import EVOFORGE, ROOT
from benchmarks.harness.processes import run_group
from service.config import RunConfig
from service.db import Database
from service.db.models import EvaluationRow, LLMSampleRow, ProblemRow, ProgramRow, RunRow
from service.problems.load import Problem
from service.runs import create_run, drive
from service.settings import Settings

DB_FILE = "evoforge.db"  # in EVOFORGE_HOME: the embedded database of a run


@dataclass(frozen=True)
class Sample:
    """One LLM answer of a run, with the score of the program it became (None: no scored child)."""

    id: int
    iteration: int
    adapter: str | None
    outcome: str
    tokens: int
    score: float | None


@dataclass(frozen=True)
class FinishedRun:
    """A run that stopped, and the SQLite file that holds everything it did."""

    home: Path
    run_id: int
    summary: dict[str, Any]  # what `evoforge run --json` prints
    wall_s: float
    started_at: float  # seconds since the epoch, when it was launched

    @property
    def db_file(self) -> Path:
        """Returns the run's SQLite file."""
        return self.home / DB_FILE

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yields a session on the run's database (closed afterwards)."""
        db = Database(f"sqlite:///{self.db_file}")
        try:
            with db.session() as s:
                yield s
        finally:
            db.close()

    def maximize(self) -> bool:
        """Returns True when the run's problem maximises its score (from the stored problem)."""
        with self.session() as s:
            return s.scalar(select(ProblemRow.direction).join(
                RunRow, RunRow.problem_id == ProblemRow.id).where(
                RunRow.id == self.run_id)) == "maximize"

    def iteration_curve(self) -> list[float | None]:
        """Returns the best score after each iteration 0..last (migrant copies left out)."""
        with self.session() as s:
            progs = s.execute(select(ProgramRow.iteration, ProgramRow.score).where(
                ProgramRow.run_id == self.run_id, ProgramRow.kind != "migrant")).all()
        last = max([p.iteration for p in progs] + [self.summary["iterations"]])
        return best_curve(progs, last, self.maximize())

    def time_curve(self) -> list[list[float]]:
        """Returns [seconds since launch, best so far] at each improvement."""
        with self.session() as s:
            progs = s.execute(select(ProgramRow.evaluated_at, ProgramRow.score).where(
                ProgramRow.run_id == self.run_id, ProgramRow.kind != "migrant",
                ProgramRow.status == "ok", ProgramRow.evaluated_at.is_not(None))).all()
        return time_curve([(_epoch(p.evaluated_at) - self.started_at, p.score) for p in progs],
                          self.maximize())

    def samples(self) -> list[Sample]:
        """Returns the run's LLM answers in the order they were stored."""
        with self.session() as s:
            rows = s.execute(
                select(LLMSampleRow.id, LLMSampleRow.iteration, LLMSampleRow.adapter,
                       LLMSampleRow.outcome,
                       LLMSampleRow.prompt_tokens + LLMSampleRow.completion_tokens,
                       ProgramRow.score)
                .outerjoin(ProgramRow, ProgramRow.sample_id == LLMSampleRow.id)
                .where(LLMSampleRow.run_id == self.run_id).order_by(LLMSampleRow.id)).all()
        return [Sample(*row) for row in rows]

    def sample_curve(self, samples: Sequence[Sample]) -> list[float | None]:
        """Returns the best score after each sample, starting from the initial program's."""
        return running_best((x.score for x in samples), self.maximize(),
                            start=self.summary["initial_score"])

    def eval_durations(self) -> list[float]:
        """Returns the duration of every successful evaluation, in seconds."""
        with self.session() as s:
            return list(s.scalars(select(EvaluationRow.duration_s).where(
                EvaluationRow.run_id == self.run_id, EvaluationRow.status == "ok",
                EvaluationRow.duration_s.is_not(None))))

    def program_counts(self) -> tuple[int, int]:
        """Returns (programs, scored programs), migrant copies left out."""
        with self.session() as s:
            statuses = s.scalars(select(ProgramRow.status).where(
                ProgramRow.run_id == self.run_id, ProgramRow.kind != "migrant")).all()
        return len(statuses), sum(st == "ok" for st in statuses)

    def outcome_counts(self) -> dict[str, int]:
        """Returns how many LLM answers ended as each outcome (child, rejected, ...)."""
        with self.session() as s:
            return dict(s.execute(select(LLMSampleRow.outcome, func.count()).where(
                LLMSampleRow.run_id == self.run_id).group_by(LLMSampleRow.outcome)).all())

    def best_code(self) -> str | None:
        """Returns the code of the run's best program (None when nothing scored)."""
        with self.session() as s:
            run = s.get(RunRow, self.run_id)
            best = s.get(ProgramRow, run.best_program_id) if run.best_program_id else None
            return best.code if best else None


def run_cli(problem: Path, home: Path, *, seed: int, iterations: int | None = None,
            options: Sequence[str] = (), config: str | None = None,
            timeout_s: float | None = 3600) -> FinishedRun:
    """Runs `evoforge run PROBLEM --json` once with EVOFORGE_HOME=home; returns it finished.

    options are more command-line options; config is the text of a RUN.toml. The process runs in
    its own group, stopped with its evaluations on timeout or interrupt; its stderr is kept in
    home/stderr.log. Raises RuntimeError naming the log when the run fails.
    """
    home.mkdir(parents=True, exist_ok=True)
    cmd = [*EVOFORGE, "run", str(problem.resolve()), "--seed", str(seed), "--json", *options]
    if iterations is not None:
        cmd += ["--iterations", str(iterations)]
    if config is not None:
        (home / "run.toml").write_text(config)
        cmd += ["--config", str(home / "run.toml")]
    started, t0 = time.monotonic(), time.time()
    proc = run_group(cmd, timeout_s, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     cwd=ROOT, env={**os.environ, "EVOFORGE_HOME": str(home)})
    wall = time.monotonic() - started
    log = home / "stderr.log"
    log.write_text(proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"evoforge run on {problem.name} seed {seed} failed "
                           f"({proc.returncode}); log {log}: {proc.stderr[-1500:]}")
    summary = json.loads(lines[-1])
    return FinishedRun(home, summary["run_id"], summary, wall, t0)


def toml_value(value: Any) -> str:
    """Returns value (JSON-like data: scalars, lists, dicts) written as a TOML value."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if value is None:
        raise ValueError("TOML has no null: leave the key out instead")
    return json.dumps(value)


def llm_table(llm: dict[str, Any]) -> str:
    """Returns the text of a RUN.toml holding these [llm] keys."""
    return "[llm]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in llm.items())


def run_on_endpoint(problem: Path, url: str, model: str, iterations: int, seed: int,
                    workers: int, home: Path, llm: dict[str, Any] | None = None,
                    timeout_s: float = 3600) -> FinishedRun:
    """Runs evoforge once with the openai backend on an OpenAI-compatible /v1 URL.

    llm holds extra [llm] settings for the run (e.g. context_window, concurrency, timeout_s).
    """
    config = llm_table(llm) if llm else None
    return run_cli(problem, home, seed=seed, iterations=iterations, config=config,
                   timeout_s=timeout_s, options=["--llm", "openai", "--llm-url", url,
                                                 "--model", model, "--workers", str(workers)])


def figures(run: FinishedRun) -> dict[str, Any]:
    """Returns the run's summary, wall time, curves, evaluation timings and best code."""
    durations = run.eval_durations()
    programs, scored = run.program_counts()
    return run.summary | {
        "wall_s": run.wall_s, "curve": run.iteration_curve(), "time_curve": run.time_curve(),
        "eval_s_mean": fmean(durations) if durations else None, "evals_timed": len(durations),
        "programs": programs, "scored": scored, "best_code": run.best_code()}


def run_in_process(problem: Problem, cfg: RunConfig, home: Path) -> FinishedRun:
    """Runs the engine on a new run in this process (database and EVOFORGE_HOME in home)."""
    db = Database(f"sqlite:///{home / DB_FILE}")
    try:
        run_id = create_run(db, problem, cfg)
        started, t0 = time.monotonic(), time.time()
        row = asyncio.run(drive(db, run_id, Settings(home=home)))
        wall = time.monotonic() - started
    finally:
        db.close()
    return FinishedRun(home, run_id, summary_of(row), wall, t0)


def summary_of(run: RunRow) -> dict[str, Any]:
    """Returns a run row's figures under the keys `evoforge run --json` prints them."""
    return {"run_id": run.id, "status": run.status, "stop_reason": run.stop_reason,
            "best_score": run.best_score, "initial_score": run.initial_score,
            "best_program_id": run.best_program_id, "iterations": run.iterations,
            "evaluations": run.evaluations, "failed": run.failed, "llm_calls": run.llm_calls,
            "tokens": run.prompt_tokens + run.completion_tokens, "elapsed_s": run.elapsed_s}


def strict_score(problem: Path, code: str) -> dict[str, Any]:
    """Re-scores code with `evoforge eval` (our sandbox and the problem's strict verifier)."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
    try:
        proc = subprocess.run([*EVOFORGE, "eval", str(problem), f.name, "--json"],
                              capture_output=True, text=True, check=False, cwd=ROOT, timeout=900)
    finally:
        os.unlink(f.name)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"status": "error", "score": None,
                "error": f"evoforge eval printed no JSON ({proc.returncode}): {proc.stderr[-500:]}"}
    result = json.loads(lines[-1])
    return {"status": result.get("status"), "score": result.get("score"),
            "error": result.get("error"), "tier": result.get("tier") or result.get("verification")}


def _epoch(when: datetime) -> float:
    """Returns a stored timestamp (naive values are UTC) as seconds since the epoch."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
