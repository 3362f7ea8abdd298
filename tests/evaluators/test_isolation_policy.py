"""The isolation policy: a layer the configuration asks for applies or the evaluation is refused
with the cause and the fix (strict, the default); best-effort runs with what the machine has and
records it. Every result names the layers it ran under."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators import pool
from evaluators.evaluate import evaluate_job
from evaluators.isolation import docker_backend, layers
from evaluators.jobs import EvalJob, EvalResult, FailureKind
from tests.evaluators.conftest import GOOD, User, private_problem

SAYS_RAN = "def solve():\n    print('the program ran')\n    return 1.0\n"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the default layers of root")
no_docker = pytest.mark.skipif(docker_backend.detect()[0], reason="a docker engine is here")


@pytest.fixture(autouse=True)
def no_servers_left() -> Iterator[None]:
    """Closes the warm servers after each test (after conftest's layer_env has read the layers
    again, where a test uses it)."""
    yield
    pool.shutdown()


def evaluate(code: str, problem: Path = GOOD, **fields: object) -> EvalResult:
    job = EvalJob(code=code, problem_dir=str(problem), evaluator_file=str(problem / "evaluator.py"),
                  **{"timeout_s": 20, **fields})
    return evaluate_job(job)


def two_phase(folder: Path) -> Path:
    """Returns a two-phase problem folder: solve() returns a number, scorer.py scores it."""
    folder.mkdir()
    (folder / "scorer.py").write_text("def score(data):\n    return {'combined_score': data}\n")
    (folder / "evaluator.py").write_text("")
    return folder


@needs_root
def test_the_default_layers_as_root_are_all_applied_and_recorded(layer_env) -> None:
    layer_env.delenv(layers.ENV_VAR, raising=False)
    assert layers.required() == ("rlimits", "reaper", "pids", "uid", "bwrap", "seccomp")
    result = evaluate(SAYS_RAN)
    assert result.ok, result.error
    assert result.layers == ["rlimits", "reaper", "pids:uid", "uid", "bwrap", "seccomp"]


@no_docker
@pytest.mark.parametrize("mode", ["fresh", "prefork", "two-phase"])
def test_a_layer_the_machine_lacks_refuses_the_evaluation_naming_the_cause_and_the_fix(
        layer_env, tmp_path: Path, mode: str) -> None:
    layer_env.setenv(layers.ENV_VAR, "uid,bwrap,seccomp,docker")  # no engine on this machine
    assert "docker" in layers.required() and "docker" not in layers.active_names()
    fields: dict[str, object] = {"prefork": mode == "prefork"}
    problem = GOOD
    if mode == "two-phase":
        problem = two_phase(tmp_path / "two")
        fields.update(scorer="scorer.py", entry="solve")
    result = evaluate(SAYS_RAN, problem, **fields)
    assert result.error_kind == FailureKind.ISOLATION, result.error
    assert "the sandbox layer(s) docker" in result.error
    assert "leave docker out of EVOFORGE_SANDBOX_LAYERS" in result.error  # the fix
    assert "evaluation.isolation = 'best-effort'" in result.error
    assert "the program ran" not in repr(result.artifacts) and result.layers == []


@no_docker
@pytest.mark.parametrize("prefork", [False, True], ids=["fresh", "prefork"])
def test_best_effort_runs_without_the_missing_layer_and_records_the_weaker_layers(
        layer_env, caplog: pytest.LogCaptureFixture, prefork: bool) -> None:
    layer_env.setenv(layers.ENV_VAR, "uid,bwrap,seccomp,docker")
    with caplog.at_level(logging.WARNING, logger="evoforge.sandbox"):
        result = evaluate(SAYS_RAN, isolation="best-effort", prefork=prefork)
    assert result.ok and result.score == 1.0, result.error
    assert "docker" not in result.layers and "bwrap" in result.layers, result.layers
    assert any(name.startswith("pids:") for name in result.layers)
    assert any("without the sandbox layer(s) docker" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("prefork", [False, True], ids=["fresh", "prefork"])
def test_a_two_phase_result_records_the_layers_both_sandboxes_had(
        layer_env, tmp_path: Path, prefork: bool) -> None:
    layer_env.delenv(layers.ENV_VAR, raising=False)
    problem = two_phase(tmp_path / "two")
    result = evaluate(SAYS_RAN, problem, scorer="scorer.py", entry="solve", prefork=prefork)
    assert result.ok and result.score == 1.0, result.error
    have = {name.split(":")[0] for name in result.layers}
    assert set(layers.required()) <= have, result.layers


def test_an_unknown_policy_is_strict(layer_env) -> None:
    layer_env.setenv(layers.ENV_VAR, "uid,bwrap,seccomp,docker")
    if "docker" in layers.active_names():
        pytest.skip("a docker engine is here")
    result = evaluate(SAYS_RAN, isolation="lenient")
    assert result.error_kind == FailureKind.ISOLATION, result.error


def test_a_forged_layer_list_in_the_result_file_is_replaced_by_the_host(layer_env) -> None:
    layer_env.delenv(layers.ENV_VAR, raising=False)
    forge = ("import json, os, sys\n\ndef solve():\n    path = sys.argv[-1]\n"
             "    json.dump({'status': 'ok', 'score': 9.0, 'layers': ['docker', 'gvisor']}, "
             "open(path, 'w'))\n    os._exit(0)\n")
    result = evaluate(forge)
    assert "gvisor" not in result.layers and result.layers, result.layers


def test_as_an_unprivileged_user_asking_for_slot_uids_is_refused_with_the_fix(
        unprivileged_user: User) -> None:
    problem = private_problem(unprivileged_user.uid)
    try:
        script = ("import json, sys\nfrom evaluators.evaluate import evaluate_job\n"
                  "from evaluators.jobs import EvalJob\n"
                  "p = sys.argv[1]\nr = evaluate_job(EvalJob(code=sys.argv[2], problem_dir=p, "
                  "evaluator_file=p + '/evaluator.py', timeout_s=20))\n"
                  "print(json.dumps(r.to_dict(), default=str))\n")
        env = ["env", f"PATH={os.environ['PATH']}", "PYTHONDONTWRITEBYTECODE=1",
               f"HOME={unprivileged_user.home}", f"{layers.ENV_VAR}=uid,bwrap,seccomp"]
        done = subprocess.run(["runuser", "-u", unprivileged_user.name, "--", *env,
                               sys.executable, "-c", script, str(problem), SAYS_RAN],
                              capture_output=True, text=True, timeout=120, check=False,
                              cwd=Path(__file__).resolve().parents[2])
    finally:
        shutil.rmtree(problem.parent, ignore_errors=True)
    result = EvalResult.from_dict(json.loads(done.stdout.splitlines()[-1]))
    assert result.error_kind == FailureKind.ISOLATION, result.error
    assert "uid: not running as root" in result.error
    assert "leave uid out of EVOFORGE_SANDBOX_LAYERS" in result.error  # the fix
