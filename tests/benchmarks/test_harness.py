"""The harness's read-back of a finished run: curves follow the direction of the run's problem."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness.curves import mean_curve, running_best
from benchmarks.harness.evoforge import DB_FILE, FinishedRun
from benchmarks.harness.paths import PROBLEMS
from service.db import Database, upgrade
from service.db.models import LLMSampleRow, ProgramRow
from service.problems.load import load_problem
from service.runs import create_run, run_config_for

# (iteration, score of the child; None: it failed), after the initial program's 5.0
CHILDREN = [(1, 6.0), (2, 4.0), (3, None), (3, 4.5), (4, 3.0)]


def _stored_run(home: Path, problem_name: str) -> FinishedRun:
    """Stores a run of the problem: the initial program (5.0) and CHILDREN, one LLM sample each."""
    url = f"sqlite:///{home / DB_FILE}"
    upgrade(url)
    db = Database(url)
    problem = load_problem(PROBLEMS / problem_name)
    run_id = create_run(db, problem, run_config_for(problem, None, {}))
    with db.session() as s:
        s.add(ProgramRow(run_id=run_id, kind="initial", iteration=0, code="x", code_hash="h0",
                         status="ok", score=5.0))
        for k, (iteration, score) in enumerate(CHILDREN):
            sample = LLMSampleRow(run_id=run_id, iteration=iteration, outcome="child",
                                  prompt_tokens=10, completion_tokens=k)
            s.add(sample)
            s.flush()
            s.add(ProgramRow(run_id=run_id, sample_id=sample.id, iteration=iteration, code=f"x{k}",
                             code_hash=f"h{k + 1}", status="ok" if score else "failed",
                             score=score))
    db.close()
    return FinishedRun(home, run_id, {"iterations": 4, "initial_score": 5.0}, 1.0, 0.0)


def test_curves_of_a_minimising_problem_keep_the_lowest_score(tmp_path: Path) -> None:
    run = _stored_run(tmp_path, "min_max_distance_16")  # direction = "minimize"
    assert not run.maximize()
    assert run.iteration_curve() == [5.0, 5.0, 4.0, 4.0, 3.0]
    samples = run.samples()
    assert [x.score for x in samples] == [6.0, 4.0, None, 4.5, 3.0]
    assert [x.tokens for x in samples] == [10, 11, 12, 13, 14]
    assert run.sample_curve(samples) == [5.0, 4.0, 4.0, 4.0, 3.0]


def test_curves_of_a_maximising_problem_keep_the_highest_score(tmp_path: Path) -> None:
    run = _stored_run(tmp_path, "quickstart")
    assert run.maximize()
    assert run.iteration_curve() == [5.0, 6.0, 6.0, 6.0, 6.0]
    assert run.sample_curve(run.samples()) == [6.0, 6.0, 6.0, 6.0, 6.0]
    assert run.program_counts() == (6, 5)
    assert run.outcome_counts() == {"child": 5}


def test_running_best_starts_from_the_given_score_and_skips_missing_ones() -> None:
    assert running_best([None, 2.0, 1.0], maximize=False, start=1.5) == [1.5, 1.5, 1.0]
    assert running_best([], maximize=True) == []
    assert mean_curve([[1.0, 2.0], [None, 4.0, 6.0]]) == [None, 3.0, 4.0]

