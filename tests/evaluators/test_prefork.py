"""Pre-forked evaluation: a warm sandboxed server per problem forks a clean child per candidate."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators import pool
from evaluators.evaluate import evaluate_job
from evaluators.isolation import layers
from evaluators.jobs import EvalJob, EvalResult
from service.config import EvaluationConfig
from service.execution.base import make_job
from service.execution.local import LocalExecutor
from service.problems.load import load_problem
from tests.evaluators.conftest import open_problem

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOOD = FIXTURES / "problems" / "good"
ONE = "def solve():\n    return 1.0\n"

# Reports the pid that imported the evaluator, the pid that scored, and how often it was imported.
PROBE_EVALUATOR = '''
import importlib.util, os

IMPORTED_BY = os.getpid()
IMPORTS = int(os.environ.get("EVOFORGE_PROBE_IMPORTS", "0")) + 1
os.environ["EVOFORGE_PROBE_IMPORTS"] = str(IMPORTS)


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": float(module.solve()), "imported_by": float(IMPORTED_BY),
            "scored_by": float(os.getpid()), "imports": float(IMPORTS)}
'''


@pytest.fixture(autouse=True)
def no_servers_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Follows one server per problem (no pair: tests/evaluators/test_pool.py has those) and
    closes the warm servers after each test."""
    monkeypatch.setattr(pool, "PAIR_GAP_S", 0.0)
    yield
    pool.shutdown()


@pytest.fixture
def probe_problem() -> Iterator[Path]:
    """Yields a problem folder (readable by slot uids) whose evaluator reports who imported it."""
    with open_problem(PROBE_EVALUATOR) as root:
        yield root


def evaluate(code: str, problem: Path = GOOD, **limits: float) -> EvalResult:
    job = EvalJob(code=code, problem_dir=str(problem), evaluator_file=str(problem / "evaluator.py"),
                  prefork=True, **{"timeout_s": 20, **limits})
    return evaluate_job(job)


def test_a_preforked_result_matches_the_fresh_process_result() -> None:
    code = (GOOD / "initial_program.py").read_text()
    fresh = evaluate_job(EvalJob(code=code, problem_dir=str(GOOD),
                                 evaluator_file=str(GOOD / "evaluator.py")))
    forked = evaluate(code)
    assert forked.ok and fresh.ok, forked.error
    assert (forked.score, forked.metrics) == (fresh.score, fresh.metrics)


def test_the_evaluator_is_imported_once_and_each_candidate_runs_in_its_own_process(
        probe_problem: Path) -> None:
    results = [evaluate(f"def solve():\n    return {k}.0\n", problem=probe_problem)
               for k in range(4)]
    assert all(r.ok for r in results), results[0].error
    assert [r.score for r in results] == [0.0, 1.0, 2.0, 3.0]
    assert {r.metrics["imported_by"] for r in results} == {results[0].metrics["imported_by"]}
    assert {r.metrics["imports"] for r in results} == {1.0}
    scored_by = [r.metrics["scored_by"] for r in results]
    assert len(set(scored_by)) == 4 and results[0].metrics["imported_by"] not in scored_by


def test_a_candidate_that_kills_the_server_is_recorded_and_the_next_one_gets_a_new_server() -> None:
    assert evaluate(ONE).ok
    killer = "import os, signal\n\ndef solve():\n    os.kill(os.getppid(), signal.SIGKILL)\n"
    result = evaluate(killer)
    assert result.error_kind == "crash"
    assert "pre-forked evaluator process ended" in result.error and "restarted" in result.error
    after = evaluate(ONE)
    assert after.ok and after.score == 1.0, after.error


def test_a_candidate_cannot_poison_the_next_one() -> None:
    tag = f"evoforge-poison-{uuid.uuid4().hex}"
    poison = '''
import os, subprocess, sys

def solve():
    sys.modules["evaluator"].evaluate = lambda path: {"combined_score": 1e9}
    for folder in ("/tmp", os.environ["HOME"], "/dev/shm"):
        try:
            with open(os.path.join(folder, "poison"), "w") as f:
                f.write("x")
        except OSError:
            pass
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "TAG"],
                     start_new_session=True)
    return 5.0
'''.replace("TAG", tag)
    first = evaluate(poison)
    assert first.ok and first.score == 5.0, first.error
    probe = '''
import os, subprocess

def solve():
    found = [d for d in ("/tmp", os.path.dirname(os.getcwd()), "/dev/shm")
             if os.path.exists(os.path.join(d, "poison"))]
    sleepers = subprocess.run(["pgrep", "-f", "TAG"], capture_output=True, text=True).stdout
    if found or sleepers.strip():
        raise RuntimeError(f"left by the previous candidate: {found} {sleepers!r}")
    return 2.0
'''.replace("TAG", tag)
    second = evaluate(probe)
    assert second.ok and second.score == 2.0, second.error


@pytest.mark.skipif("uid" not in layers.active_names() and not os.environ.get("CI"),
                    reason="the uid layer is not active here")
def test_the_server_control_pipe_is_out_of_the_candidates_reach() -> None:
    forge = '''
import json, os

def solve():
    opened = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    with open(f"/proc/{pid}/fd/{fd}", "w") as f:
                        f.write(json.dumps({"nonce": "guess", "result": None}) + "\\n")
                    opened += 1
                except OSError:
                    pass
    return float(opened)
'''
    result = evaluate(forge)
    assert result.ok and result.score == 0.0, result.error
    assert evaluate(ONE).score == 1.0


def test_each_candidate_gets_its_own_time_and_memory_limits() -> None:
    slow = evaluate("import time\n\ndef solve():\n    time.sleep(30)\n", timeout_s=1)
    assert slow.error_kind == "timeout" and "exceeded 1 s wall clock" in slow.error
    big = evaluate("def solve():\n    x = bytearray(400 * 2**20)\n    return 1.0\n", memory_mb=300)
    assert big.error_kind == "memory" and "300 MiB" in big.error, big.error
    fine = evaluate("def solve():\n    x = bytearray(400 * 2**20)\n    return 1.0\n",
                    memory_mb=1024)
    assert fine.ok, fine.error


def test_an_evaluator_that_fails_to_import_fails_every_job_with_the_reason(
        probe_problem: Path) -> None:
    (probe_problem / "evaluator.py").write_text("import no_such_module_here\n")
    for _ in range(2):
        result = evaluate(ONE, problem=probe_problem)
        assert result.error_kind == "evaluator" and "no_such_module_here" in result.error


def test_a_changed_evaluator_file_gets_a_new_server(probe_problem: Path) -> None:
    assert evaluate(ONE, problem=probe_problem).ok
    time.sleep(0.01)
    (probe_problem / "evaluator.py").write_text(
        "def evaluate(path):\n    return {'combined_score': 42.0}\n")
    assert evaluate(ONE, problem=probe_problem).score == 42.0


def test_the_run_config_switch_routes_jobs_to_a_warm_server() -> None:
    problem = load_problem(GOOD)
    job = make_job(problem, ONE, EvaluationConfig(prefork=True))
    assert job.prefork
    assert evaluate_job(job).ok
    assert pool.idle_server_pids(), "no warm server after a pre-forked evaluation"
    assert not make_job(problem, ONE, EvaluationConfig()).prefork


def test_concurrent_preforked_evaluations_use_one_server_per_slot_and_all_finish() -> None:
    async def run_all() -> tuple[list[EvalResult], list[bool]]:
        executor = LocalExecutor(workers=2)
        jobs = [EvalJob(code=f"def solve():\n    return {k}.0\n", problem_dir=str(GOOD),
                        evaluator_file=str(GOOD / "evaluator.py"), prefork=True)
                for k in range(12)]
        try:
            results = await asyncio.gather(*(executor.evaluate(j) for j in jobs))
        finally:
            await executor.aclose()
        # checked while the pool threads live: bwrap --die-with-parent ends a server when the
        # thread that started it ends (asyncio.run's shutdown); the next job then starts another
        return results, [s.alive for s in pool.idle_servers()]

    results, alive = asyncio.run(run_all())
    assert [r.score for r in results] == [float(k) for k in range(12)], results[0].error
    assert 1 <= len(alive) <= 2 and all(alive)


def test_files_a_candidate_locks_away_are_still_removed_before_the_next_one() -> None:
    locker = '''
import os

def solve():
    for folder in ("/tmp", os.getcwd()):
        path = os.path.join(folder, "locked", "inner")
        os.makedirs(path)
        open(os.path.join(path, "secret"), "w").write("x")
        os.chmod(os.path.join(folder, "locked"), 0)
    return 3.0
'''
    assert evaluate(locker).score == 3.0
    probe = '''
import os

def solve():
    parent = os.path.dirname(os.getcwd())
    left = [p for p in ("/tmp/locked", os.path.join(parent, "c1", "locked"))
            if os.path.lexists(p)]
    if left:
        raise RuntimeError(f"left behind: {left}")
    return 4.0
'''
    result = evaluate(probe)
    assert result.ok and result.score == 4.0, result.error
