"""Fills a run with N stored programs by bulk inserts: programs, their LLM samples and evaluations.

Rows look like a real run's: 1-2 KB programs with an EVOLVE-BLOCK, metrics, features, islands,
~88 % scored, ~8 % failed, ~4 % duplicates, one sample per child and one evaluation per attempt.
Used by perf.controller_overhead and perf.api_latency.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from pathlib import Path

from sqlalchemy import func, insert, select, update

from benchmarks.perf import synthetic
from evaluators import tree
from service.db import Database
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow, utcnow

CHUNK = 5000
TRACEBACK = "Traceback (most recent call last):\n  ...\nValueError: math domain error"
SYSTEM = "You improve Python programs. Answer with the whole new EVOLVE-BLOCK in one python block."


def problem_folder(root: Path, files: int = 1) -> Path:
    """Writes the synthetic problem into root and returns it (files > 1: a folder program of that
    many files, synthetic.files)."""
    root.mkdir(parents=True, exist_ok=True)
    if files > 1:
        for rel, text in synthetic.files(0, files).items():
            (root / "initial_program" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "initial_program" / rel).write_text(text)
    else:
        (root / "initial_program.py").write_text(synthetic.program(0))
    (root / "evaluator.py").write_text(synthetic.EVALUATOR)
    (root / "problem.toml").write_text('[problem]\nname = "spread"\n'
                                       'description = "Spread 16 points in the unit square."\n')
    return root


def _program_row(run_id: int, i: int, first_id: int, islands: int, rng: random.Random,
                 files: int) -> dict:
    code = synthetic.program(i)
    stored = synthetic.files(i, files) if files > 1 else {tree.SINGLE: code}
    r = rng.random()
    status = "ok" if i == 0 or r > 0.12 else ("failed" if r > 0.04 else "duplicate")
    score = rng.random() * 0.9 if status == "ok" else None
    scored, failed = score is not None, status == "failed"

    def earlier() -> int | None:
        return first_id + rng.randrange(i) if i else None

    return {
        "run_id": run_id, "parent_id": earlier(), "sample_id": None,
        "kind": "mutation" if i else "initial", "island": i % islands,
        "generation": rng.randint(0, 40), "iteration": i, "files": stored,
        "code_hash": hashlib.sha256(code.encode()).hexdigest(), "status": status,
        "duplicate_of": earlier() if status == "duplicate" else None, "score": score,
        "inspiration_ids": [earlier() for _ in range(3)] if i else [],
        "metrics": {"combined_score": score, "spread": score / 10} if scored else {},
        "features": {"complexity": rng.uniform(0.6, 1.6), "diversity": rng.uniform(0.0, 0.7)}
        if scored else {},
        "artifacts": {"stdout": f"spread {score}\n"} if scored else {"traceback": TRACEBACK},
        "failure_kind": "exception" if failed else None,
        "failure_reason": "ValueError: math domain error" if failed else None,
        "model": "scripted", "adapter": None, "in_archive": False, "created_at": utcnow(),
        "evaluated_at": utcnow() if status != "duplicate" else None}


def _sample_row(run_id: int, prog: dict) -> dict:
    prompt = [{"role": "system", "content": SYSTEM},
              {"role": "user", "content": "Improve this program.\n```python\n"
               + synthetic.program(prog["iteration"] + 1) + "```\n"}]
    return {"run_id": run_id, "parent_id": prog["parent_id"], "iteration": prog["iteration"],
            "group_id": uuid.uuid4().hex[:12], "prompt": prompt,
            "completion": synthetic.answer(prog["iteration"]), "finish_reason": "stop",
            "model": "scripted", "adapter": None, "prompt_tokens": 600,
            "completion_tokens": 350, "latency_s": 2.0,
            "outcome": "duplicate" if prog["duplicate_of"] else "child",
            "rejection": None, "reward": None, "created_at": utcnow()}


def _evaluation_row(run_id: int, prog: dict, program_id: int) -> dict:
    return {"program_id": program_id, "run_id": run_id, "attempt": 1, "status": prog["status"],
            "executor": "local", "worker": "local", "stage": 1,
            "error_kind": prog["failure_kind"], "error": prog["failure_reason"],
            "duration_s": 0.5, "created_at": utcnow(), "started_at": utcnow(),
            "finished_at": utcnow()}


def populate(db: Database, run_id: int, n: int, islands: int, seed: int, files: int = 1) -> float:
    """Bulk-inserts n programs (the first one the initial program) of `files` files each, with
    their samples and evaluations, into the run; returns the seconds it took."""
    rng = random.Random(seed)
    started = time.perf_counter()
    evaluations = failed = 0
    with db.engine.begin() as conn:
        first_id = (conn.scalar(select(func.max(ProgramRow.id))) or 0) + 1
        for lo in range(0, n, CHUNK):
            progs = [_program_row(run_id, i, first_id, islands, rng, files)
                     for i in range(lo, min(n, lo + CHUNK))]
            samples = [_sample_row(run_id, p) for p in progs if p["kind"] == "mutation"]
            ids = conn.scalars(insert(LLMSampleRow).returning(
                LLMSampleRow.id, sort_by_parameter_order=True), samples).all()
            for p, sid in zip((p for p in progs if p["kind"] == "mutation"), ids, strict=True):
                p["sample_id"] = sid
            pids = conn.scalars(insert(ProgramRow).returning(
                ProgramRow.id, sort_by_parameter_order=True), progs).all()
            if pids[0] != first_id + lo or pids[-1] != first_id + lo + len(progs) - 1:
                raise RuntimeError("program ids are not contiguous; fill a fresh database")
            conn.execute(insert(EvaluationRow), [_evaluation_row(run_id, p, pid)
                                                 for p, pid in zip(progs, pids, strict=True)
                                                 if p["status"] != "duplicate"])
            evaluations += sum(p["status"] != "duplicate" for p in progs)
            failed += sum(p["status"] == "failed" for p in progs)
        conn.execute(update(RunRow).where(RunRow.id == run_id).values(
            status="paused", iterations=n - 1, llm_calls=n - 1, prompt_tokens=600 * (n - 1),
            completion_tokens=350 * (n - 1), evaluations=evaluations, failed=failed,
            elapsed_s=float(n)))
    if db.engine.dialect.name == "postgresql":  # what autovacuum does to a live database; left
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")  # to it, it runs during the measurement
    return time.perf_counter() - started
