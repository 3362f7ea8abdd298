"""The warm fork servers of a process: a pair for short evaluations back to back, one otherwise.

Real sandboxed fork servers under the layers each test names (root, bwrap and slot uids: CI
installs every layer). Each server's evaluator draws a token when it is imported, so a result
says which server scored it (pids repeat across pid namespaces).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators import pool
from evaluators.evaluate import evaluate_job
from evaluators.isolation import layers
from evaluators.jobs import EvalJob, EvalResult
from tests.evaluators.conftest import open_problem

TOKEN_EVALUATOR = '''
import importlib.util, os, time

TOKEN = float(int.from_bytes(os.urandom(4), "little"))  # which server imported this


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": float(module.solve()), "server": TOKEN}
'''
ONE = "def solve():\n    return 1.0\n"
SLOW = "import time\n\ndef solve():\n    time.sleep(0.15)\n    return 1.0\n"
# kills every process it may signal but itself: its own server, and the other of its pair if it
# could reach it
KILLER = """import os, signal

def solve():
    for entry in os.listdir('/proc'):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass
    return 1.0
"""


def available(names: str) -> bool:
    """Returns True when every layer of names is active by default here (CI has them all)."""
    return set(names.split(",")) <= set(layers.active_names()) or bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def fresh_pool(layer_env: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Yields monkeypatch with the pair's thresholds wide (a loaded machine stays under them);
    the layers are read again before and after, and the servers closed."""
    layer_env.setattr(pool, "PAIR_GAP_S", 0.5)
    layer_env.setattr(pool, "PAIR_BELOW_S", 5.0)
    yield layer_env
    pool.shutdown()


@pytest.fixture
def problem() -> Iterator[Path]:
    """Yields a problem folder (readable by slot uids) whose evaluator names its server."""
    with open_problem(TOKEN_EVALUATOR) as root:
        yield root


def evaluate(problem: Path, code: str = ONE) -> EvalResult:
    """Returns code's pre-forked result under problem's evaluator."""
    return evaluate_job(EvalJob(code=code, problem_dir=str(problem), timeout_s=20, prefork=True,
                                evaluator_file=str(problem / "evaluator.py")))


def servers(results: list[EvalResult]) -> list[float]:
    """Returns the token of the server that scored each result."""
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return [r.metrics["server"] for r in results]


def use(monkeypatch: pytest.MonkeyPatch, names: str) -> None:
    """Runs the test under exactly the layers names (skipped where this machine lacks one)."""
    if not available(names):
        pytest.skip(f"the layers {names} are not all available here")
    monkeypatch.setenv("EVOFORGE_SANDBOX_LAYERS", names)
    layers.reset()


def test_short_evaluations_back_to_back_get_a_second_server_and_the_two_take_turns(
        problem: Path) -> None:
    first, second, *rest = servers([evaluate(problem) for _ in range(6)])
    assert first == second  # the second came back to back: the pair is started after it
    assert rest[0] != first and rest == [rest[0], first] * 2
    assert len(pool.idle_servers()) == 2


def test_evaluations_with_a_pause_keep_one_server(
        problem: Path, fresh_pool: pytest.MonkeyPatch) -> None:
    fresh_pool.setattr(pool, "PAIR_GAP_S", 0.05)
    results = []
    for _ in range(4):
        results.append(evaluate(problem))
        time.sleep(0.1)
    assert len(set(servers(results))) == 1 and len(pool.idle_servers()) == 1


def test_long_evaluations_back_to_back_keep_one_server(
        problem: Path, fresh_pool: pytest.MonkeyPatch) -> None:
    fresh_pool.setattr(pool, "PAIR_BELOW_S", 0.1)
    assert len(set(servers([evaluate(problem, SLOW) for _ in range(3)]))) == 1
    assert len(pool.idle_servers()) == 1


@pytest.mark.parametrize("names", ["rlimits,uid", "rlimits,bwrap,seccomp"])
def test_a_candidate_cannot_reach_the_other_server_of_its_pair(
        problem: Path, fresh_pool: pytest.MonkeyPatch, names: str) -> None:
    use(fresh_pool, names)
    tokens = servers([evaluate(problem) for _ in range(4)])  # A A B A: B is taken next
    other = tokens[-1]
    killed = evaluate(problem, KILLER)
    assert killed.error_kind == "crash" and "restarted" in (killed.error or "")  # its own server
    after = evaluate(problem)
    assert after.ok and after.metrics["server"] == other  # the other one, still warm


def test_no_pair_where_the_two_servers_could_reach_each_other(
        problem: Path, fresh_pool: pytest.MonkeyPatch) -> None:
    use(fresh_pool, "rlimits")
    assert len(set(servers([evaluate(problem) for _ in range(4)]))) == 1
    assert len(pool.idle_servers()) == 1


def test_the_pair_is_left_out_when_the_environment_says_so() -> None:
    probe = "from evaluators import pool; print(pool.PAIR_GAP_S)"
    env = {**os.environ, pool.PAIR_VAR: "0"}
    off = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         check=True)
    env[pool.PAIR_VAR] = "1"
    on = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                        check=True)
    assert float(off.stdout) == 0.0 < float(on.stdout)
