"""evaluate_job, the service's one entry point: each kind of job reaches the way it is run, and the
ways agree on a verdict."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators import pool
from evaluators.evaluate import evaluate_job
from evaluators.jobs import EvalJob, FailureKind

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "problems" / "good"
ONE = "def solve():\n    return 1.0\n"
SCORER = """
def score(data):
    if not isinstance(data, list) or not all(isinstance(x, int | float) for x in data):
        raise ValueError("expected a list of numbers")
    print("scored by the trusted scorer")
    return {"combined_score": float(sum(data))}
"""


@pytest.fixture(autouse=True)
def no_servers_left() -> Iterator[None]:
    """Starts and ends each test without warm fork servers."""
    pool.shutdown()
    yield
    pool.shutdown()


def good_job(code: str = ONE, **fields: object) -> EvalJob:
    """Returns a job for the fixture problem `good` (its evaluator returns solve())."""
    return EvalJob(code=code, problem_dir=str(GOOD), evaluator_file=str(GOOD / "evaluator.py"),
                   **{"timeout_s": 20, **fields})


def two_phase_job(tmp_path: Path, code: str, **fields: object) -> EvalJob:
    """Returns a two-phase job: code's construct() returns data that SCORER scores."""
    folder = tmp_path / "problem"
    folder.mkdir(exist_ok=True)
    (folder / "scorer.py").write_text(textwrap.dedent(SCORER))
    return EvalJob(code=code, problem_dir=str(folder), evaluator_file=str(folder / "scorer.py"),
                   scorer="scorer.py", entry="construct", **{"timeout_s": 20, **fields})


def test_a_plain_job_is_scored_in_a_fresh_process_that_leaves_no_server() -> None:
    result = evaluate_job(good_job())
    assert result.ok and result.score == 1.0, result.error
    assert not pool.idle_server_pids()


def test_a_preforked_job_goes_to_a_warm_server_but_its_check_to_a_fresh_process() -> None:
    job = good_job(prefork=True)
    checked = evaluate_job(job, check=True)
    assert checked.ok and checked.artifacts["entry_points"] == "evaluate", checked.error
    assert not pool.idle_server_pids()
    scored = evaluate_job(job)
    assert scored.ok and scored.score == 1.0, scored.error
    assert pool.idle_server_pids()


def test_a_two_phase_job_has_its_data_scored_by_the_trusted_scorer(tmp_path: Path) -> None:
    job = two_phase_job(tmp_path, "def construct():\n    return [1, 2.5]\n")
    checked = evaluate_job(job, check=True)
    assert checked.ok and checked.artifacts["entry_points"] == "score", checked.error
    result = evaluate_job(job)
    assert result.ok and result.score == 3.5, result.error
    assert "scored by the trusted scorer" in result.artifacts["scorer_stdout"]
    assert result.artifacts["data_bytes"] == len("[1, 2.5]")


@pytest.mark.parametrize(("code", "kind", "words"), [
    ("def solve():\n    return [][1]\n", FailureKind.EXCEPTION,
     "evaluate() raised IndexError: list index out of range at program.py:2 (in solve)"),
    ("import os\n\ndef solve():\n    os._exit(0)\n", FailureKind.CRASH,
     ("the evaluation process exited with code 0 before writing a result (os._exit() or "
     "sys.exit() in the program or evaluator?)")),
    ("def solve():\n    return 'high'\n", FailureKind.EXCEPTION,
     ("evaluate() raised ValueError: could not convert string to float: 'high' at "
     "evaluator.py:17 (in evaluate)")),
])
def test_fresh_and_preforked_runs_give_a_failing_candidate_the_same_verdict(
        code: str, kind: FailureKind, words: str) -> None:
    fresh = evaluate_job(good_job(code))
    forked = evaluate_job(good_job(code, prefork=True))
    for result in (fresh, forked):
        assert (result.error_kind, result.error) == (kind, words)
    assert dataclasses.replace(fresh, duration_s=0, artifacts={}) == \
        dataclasses.replace(forked, duration_s=0, artifacts={})
