"""Two-phase evaluation in warm fork servers (evaluation.prefork): the same verdicts as the fresh
path, the candidate's processes and the scorer's kept apart, servers reused."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators import pool
from evaluators.evaluate import evaluate_job
from evaluators.jobs import EvalJob, EvalResult

SCORER = """
import os
from pathlib import Path

def score(data):
    if not isinstance(data, list) or len(data) != 3:
        raise ValueError(f"expected a list of 3 numbers; got {str(data)[:40]}")
    for x in data:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x or abs(x) > 1e9:
            raise ValueError(f"{x!r} is not a finite number")
    return {"combined_score": float(sum(data)), "pid": float(os.getpid()),
            "program_file_seen": float(Path("program.py").exists()),
            "seed": float(os.environ.get("EVOFORGE_EVAL_SEED", "-1"))}
"""
HONEST = "def construct():\n    return [1.0, 2, 3.5]\n"


@pytest.fixture(autouse=True)
def no_warm_servers() -> Iterator[None]:
    pool.shutdown()
    yield
    pool.shutdown()


def run(tmp_path: Path, program: str, scorer: str = SCORER, **job: object) -> EvalResult:
    """Returns the pre-forked two-phase result of program against scorer, in the real sandbox."""
    folder = tmp_path / "problem"
    folder.mkdir(exist_ok=True)
    if not (folder / "scorer.py").exists() or (folder / "scorer.py").read_text() != scorer:
        (folder / "scorer.py").write_text(textwrap.dedent(scorer))
    return evaluate_job(EvalJob(code=textwrap.dedent(program), problem_dir=str(folder),
                                evaluator_file=str(folder / "scorer.py"), scorer="scorer.py",
                                entry="construct", prefork=True, **{"timeout_s": 20, **job}))


def roles() -> list[str]:
    """Returns the roles of this process's idle fork servers."""
    return sorted(s.role for s in pool.idle_servers())


def test_both_phases_run_in_warm_servers_that_are_reused(tmp_path: Path) -> None:
    first = run(tmp_path, "print('hello')\n" + HONEST, seed=7)
    assert first.ok, first.error
    assert first.score == 6.5 and first.metrics["seed"] == 7.0
    assert first.metrics["program_file_seen"] == 0.0  # the scorer's side never gets the code
    assert "hello" in first.artifacts["stdout"] and first.artifacts["data_bytes"] > 0
    assert roles() == ["produce", "score"]
    second = run(tmp_path, HONEST)
    assert second.score == 6.5 and roles() == ["produce", "score"]  # the same two, warm
    assert second.metrics["pid"] != first.metrics["pid"]  # each data set scored in a new child


@pytest.mark.parametrize(("body", "kind", "reason"), [
    ("return [float('nan'), 1, 2]", "rejected", "nan is not a finite number"),
    ("return [1, 2]", "rejected", "expected a list of 3 numbers"),
    ("return object()", "rejected", "object is not JSON data"),
    ("return list(range(300_000))", "output", "the cap is 100000"),
    ("raise RuntimeError('no packing today')", "exception", "RuntimeError: no packing today"),
    ("while True: pass", "timeout", "exceeded"),
])
def test_bad_data_gets_the_fresh_paths_verdict(tmp_path: Path, body: str, kind: str,
                                              reason: str) -> None:
    result = run(tmp_path, f"def construct():\n    {body}\n", data_max_bytes=100_000,
                 timeout_s=3 if kind == "timeout" else 20)
    assert not result.ok and result.score is None
    assert result.error_kind == kind and reason in result.error, result.error
    assert run(tmp_path, HONEST, data_max_bytes=100_000).score == 6.5  # the next one is fine


MONKEYPATCH = """
import sys
import evaluators.phases as phases
from evaluators.jobs import EvalResult
phases.score_loaded = lambda *a, **k: EvalResult(status="ok", score=1e9)
phases.load_scorer = lambda *a, **k: None
for name, module in list(sys.modules.items()):
    if hasattr(module, "score"):
        module.score = lambda data: {"combined_score": 1e9}

def construct():
    return [float("nan"), 0, 0]
"""
SYMLINKED_DATA = """
import os
from pathlib import Path

def construct():
    os.symlink("/etc/passwd", Path.cwd() / "data.json")
    os.write(3, b'{"status": "ok"}')
    os._exit(0)
"""
KILL_EVERYTHING = """
import os, signal

def construct():
    os.kill(-1, signal.SIGKILL)
    return [1, 1, 1]
"""


@pytest.mark.parametrize(("program", "reason"), [
    (MONKEYPATCH, "nan is not a finite number"),
    (SYMLINKED_DATA, "could not be read"),
    (KILL_EVERYTHING, ""),
])
def test_a_candidate_cannot_reach_the_scorer(tmp_path: Path, program: str, reason: str) -> None:
    run(tmp_path, HONEST)  # both servers warm: the candidate could try to reach the scorer's
    result = run(tmp_path, program)
    assert not result.ok and result.score is None and reason in result.error, result.error
    after = run(tmp_path, HONEST)
    assert after.ok and after.score == 6.5, after.error


def test_a_changed_scorer_gets_a_new_score_server(tmp_path: Path) -> None:
    assert run(tmp_path, HONEST).score == 6.5
    doubled = SCORER.replace("float(sum(data))", "2 * float(sum(data))")
    assert run(tmp_path, HONEST, scorer=doubled).score == 13.0
    broken = run(tmp_path, HONEST, scorer="def judge(data):\n    return {}\n")
    assert broken.error_kind == "evaluator" and "defines no score(data)" in broken.error
