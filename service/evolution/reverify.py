"""Re-verifies a run's best programs in a fresh sandbox and records the tier of each score.

Tiers: "evaluated" (scored once, as the loop does), "re-verified strict" (scored again in a fresh
sandbox by a two-phase problem's trusted scorer, same score), "re-evaluated" (scored again in a
fresh sandbox by an OpenEvolve-style evaluator that runs beside the program, same score),
"re-evaluated (stochastic, sd X)" (scored again several times and the scores vary: the evaluator
is noisy, the note gives mean ± sd), and "re-verification failed" (the second evaluation failed
or gave another score; the note says how).

A stochastic evaluator is either declared (evaluation.repeats = K: K evaluations, mean ± sd) or
found out: a score that does not reproduce is scored AUTO_REPEATS times more; scores that vary
among themselves mark the evaluator stochastic, scores that agree with each other but not with
the stored one are a failure (the strict check of a deterministic evaluator).
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluators.evaluate import evaluate_job
from service.config import RunConfig
from service.db import Database
from service.db.models import ProgramRow, utcnow
from service.db.queries import best_first
from service.db.status import ProgramKind, ProgramStatus
from service.execution.base import make_job
from service.problems.load import Problem

TIER_LABELS = {None: "evaluated", "strict": "re-verified strict", "reevaluated": "re-evaluated",
               "reseeded": "re-evaluated on fresh seeds", "stochastic": "re-evaluated (stochastic)",
               "failed": "re-verification failed"}
REL_TOL = 1e-9  # the same score up to float noise: sums in another order, nothing more
AUTO_REPEATS = 4  # evaluations more when a score does not reproduce: noise or a wrong score?


@dataclass(frozen=True)
class Verification:
    """The outcome of re-verifying one program."""

    program_id: int
    score: float | None
    verified_score: float | None
    tier: str
    note: str

    @property
    def label(self) -> str:
        """Returns the tier in words."""
        return label_of(self.tier, self.note)


def label_of(tier: str | None, note: str | None) -> str:
    """Returns a tier in words; a stochastic score's label carries its spread (sd, mean)."""
    if tier == "stochastic" and note:
        return f"re-evaluated (stochastic, {note})"
    return TIER_LABELS.get(tier, str(tier))


def tier_label(program: ProgramRow) -> str:
    """Returns the verification tier of a stored program's score, in words."""
    label = label_of(program.tier, program.verify_note)
    shown = program.tier in ("failed", "reseeded") and program.verify_note
    return f"{label} ({program.verify_note})" if shown else label


def top_programs(s: Session, run_id: int, direction: str, k: int) -> list[ProgramRow]:
    """Returns the run's k best scored programs, best first, one per distinct code."""
    order = best_first(ProgramRow.score, direction)
    rows = s.scalars(select(ProgramRow).where(
        ProgramRow.run_id == run_id, ProgramRow.status == ProgramStatus.OK,
        ProgramRow.score.is_not(None),
        ProgramRow.kind != ProgramKind.MIGRANT).order_by(order, ProgramRow.id))
    picked: list[ProgramRow] = []
    seen: set[str] = set()
    for row in rows:
        if len(picked) >= k:
            break
        if row.code_hash not in seen:
            seen.add(row.code_hash)
            picked.append(row)
    return picked


def verify_code(problem: Problem, cfg: RunConfig, program_id: int, code: str,
                score: float | None, python: str = sys.executable) -> Verification:
    """Returns the verdict of scoring code again in a fresh sandbox against its stored score."""
    ev = cfg.evaluation
    if ev.fresh_seeds:
        return reseed_code(problem, cfg, program_id, code, score, python)
    scores, failure = _scores(problem, cfg, program_id, code, max(ev.repeats, 1), python)
    if failure:
        return Verification(program_id, score, None, "failed", failure)
    tol = max(REL_TOL, ev.rel_tolerance or 0.0)
    if not ev.repeats and score is not None and _close(scores[0], score, tol):
        tier = "strict" if problem.two_phase else "reevaluated"
        return Verification(program_id, score, scores[0], tier, "")
    if not ev.repeats:  # not reproduced: a noisy evaluator, or a score that is wrong?
        more, failure = _scores(problem, cfg, program_id, code, AUTO_REPEATS, python)
        if failure:
            return Verification(program_id, score, None, "failed", failure)
        scores += more
        if all(_close(x, scores[0], REL_TOL) for x in scores):
            return Verification(program_id, score, scores[0], "failed",
                                f"score not reproduced: evaluated {score!r}, now {scores[0]!r} "
                                f"in each of {len(scores)} evaluations")
    return _stochastic(program_id, score, scores, ev.rel_tolerance)


def _scores(problem: Problem, cfg: RunConfig, program_id: int, code: str, times: int,
            python: str) -> tuple[list[float], str]:
    """Returns (scores of code evaluated `times` times, "" ), or ([], why one failed)."""
    scores = []
    for i in range(times):
        result = evaluate_job(make_job(problem, code, cfg.evaluation, program_id=program_id),
                              python)
        if not result.ok:
            return [], f"evaluation {i + 1} of {times}: {result.error_kind}: {result.error}"
        scores.append(result.score)
    return scores, ""


def _close(a: float, b: float, rel_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12)


def _stochastic(program_id: int, score: float | None, scores: list[float],
                rel_tolerance: float | None) -> Verification:
    """Returns the verdict on a noisy evaluator's scores: mean ± sd, failed only when a declared
    rel_tolerance puts the mean too far from the stored score."""
    mean = math.fsum(scores) / len(scores)
    sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
    note = f"sd {sd:.3g}, mean {mean:.6g} over {len(scores)} evaluations"
    if score is not None:
        note += f"; evaluated {score:.6g}"
    if rel_tolerance is not None and (score is None or not _close(mean, score, rel_tolerance)):
        return Verification(program_id, score, mean, "failed", f"stochastic ({note}): the mean "
                            f"is further from the evaluated score than rel_tolerance "
                            f"{rel_tolerance:g}")
    return Verification(program_id, score, mean, "stochastic", note)


def reseed_code(problem: Problem, cfg: RunConfig, program_id: int, code: str,
                score: float | None, python: str = sys.executable) -> Verification:
    """Returns the mean score of code over fresh evaluation seeds (for noisy problems)."""
    seeds = range(1, cfg.evaluation.fresh_seeds + 1)
    scores = []
    for seed in seeds:
        result = evaluate_job(make_job(problem, code, cfg.evaluation, program_id=program_id,
                                       seed=seed), python)
        if not result.ok:
            return Verification(program_id, score, None, "failed",
                                f"fresh seed {seed}: {result.error_kind}: {result.error}")
        scores.append(result.score)
    mean = math.fsum(scores) / len(scores)
    spread = max(scores) - min(scores)
    return Verification(program_id, score, mean, "reseeded",
                        f"mean of {len(scores)} fresh seeds {mean:.6g} (range {spread:.3g}); "
                        f"evaluated {score:.6g}" if score is not None else "")


def reverify_run(db: Database, run_id: int, problem: Problem, cfg: RunConfig,
                 top_k: int | None = None, python: str = sys.executable) -> list[Verification]:
    """Re-verifies the run's top-k programs (default: evaluation.reverify_top_k); stores tiers."""
    k = cfg.evaluation.reverify_top_k if top_k is None else top_k
    if k < 0:
        raise ValueError(f"top_k = {k}; give 0 or more programs to re-verify")
    with db.session() as s:
        todo = [(p.id, p.code, p.score) for p in top_programs(s, run_id, problem.direction, k)]
    verdicts = [verify_code(problem, cfg, pid, code, score, python) for pid, code, score in todo]
    with db.session() as s:
        for v in verdicts:
            row = s.get(ProgramRow, v.program_id)
            row.tier, row.verified_score = v.tier, v.verified_score
            row.verify_note, row.verified_at = v.note or None, utcnow()
    return verdicts
