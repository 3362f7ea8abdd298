"""The process and thread limit of one evaluation, as root and as an unprivileged user, from a
problem folder inside a private (0700) folder, watched from outside (tests/evaluators/observe.py:
the exact peak of the evaluation's tasks, from a pids cgroup around it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators.evaluate import evaluate_job
from evaluators.isolation import cgroups, layers
from evaluators.isolation.limits import Limits
from evaluators.jobs import EvalJob
from tests.evaluators.conftest import User, private_problem
from tests.evaluators.observe import Observed, observed, watcher_problem
from tests.evaluators.test_hostile import hostile

LIMIT = Limits().processes
FORKS = ("import os, time\nn = 0\ntry:\n    while n < 100:\n        if os.fork() == 0:\n"
         "            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError:\n"
         "    pass\nprint(n)")  # forks sleeping children until refused; prints how many
needs_watcher = pytest.mark.skipif(watcher_problem() is not None,
                                   reason=f"cannot watch evaluations here: {watcher_problem()}")


@pytest.fixture
def root_problem() -> Iterator[Path]:
    """Yields the good problem inside a 0700 folder of root's."""
    problem = private_problem(0)
    yield problem
    shutil.rmtree(problem.parent, ignore_errors=True)


@pytest.fixture
def user_problem(unprivileged_user: User) -> Iterator[Path]:
    """Yields the good problem inside a 0700 folder of the throwaway user's."""
    problem = private_problem(unprivileged_user.uid)
    yield problem
    shutil.rmtree(problem.parent, ignore_errors=True)


def job(code: str, problem: Path, **fields: object) -> EvalJob:
    return EvalJob(code=code, problem_dir=str(problem),
                   evaluator_file=str(problem / "evaluator.py"), **{"timeout_s": 20, **fields})


def assert_bounded(seen: Observed, started: float) -> None:
    """Asserts the bomb was refused by the limit, at once, with every task of it gone after."""
    result = seen.result
    assert result.error_kind == "exception", f"{result.error}\n{seen.stderr[-2000:]}"
    assert "fork refused after" in result.error and "Resource temporarily unavailable" in \
        result.error, result.error
    assert 0 < seen.peak <= LIMIT, f"{seen.peak} tasks alive at once; the limit is {LIMIT}"
    assert time.monotonic() - started < 15, "stopped by the wall clock, not refused"
    assert seen.left == [], f"left running: {seen.left}"


@needs_watcher
@pytest.mark.parametrize("prefork", [False, True], ids=["fresh", "prefork"])
def test_as_root_a_fork_bomb_from_a_private_folder_stays_under_the_process_limit(
        root_problem: Path, prefork: bool) -> None:
    started = time.monotonic()
    seen = observed(job(hostile("fork_bomb"), root_problem, timeout_s=10, prefork=prefork))
    assert_bounded(seen, started)
    assert {"uid", "pids:uid", "bwrap", "seccomp"} <= set(seen.result.layers)


@needs_watcher
def test_as_root_a_fork_loop_is_refused_at_the_limit_not_at_its_own_count(
        root_problem: Path) -> None:
    seen = observed(job(hostile("fork_loop", count=400, sleep=20), root_problem))
    made = int(seen.result.error.split("fork refused after ")[1].split()[0])
    assert made < LIMIT and seen.peak <= LIMIT, (made, seen.peak)
    assert seen.left == []


@needs_watcher
@pytest.mark.parametrize("prefork", [False, True], ids=["fresh", "prefork"])
def test_as_an_unprivileged_user_a_fork_bomb_from_a_private_folder_stays_under_the_limit(
        unprivileged_user: User, user_problem: Path, prefork: bool) -> None:
    started = time.monotonic()
    seen = observed(job(hostile("fork_bomb"), user_problem, timeout_s=10, prefork=prefork),
                    user=unprivileged_user.name, env={"HOME": str(unprivileged_user.home)})
    if seen.result.error_kind == "isolation":
        pytest.skip(f"this machine gives an unprivileged user no process limit: "
                    f"{seen.result.error}")
    assert_bounded(seen, started)
    assert {"pids:userns", "bwrap", "seccomp"} <= set(seen.result.layers), seen.result.layers
    assert "uid" not in seen.result.layers


@needs_watcher
def test_as_an_unprivileged_user_its_own_processes_do_not_count_against_the_evaluation(
        unprivileged_user: User, user_problem: Path) -> None:
    sleepers = [unprivileged_user.start(["sleep", "60"])
                for _ in range(LIMIT + 20)]  # more processes than one evaluation may have
    try:
        seen = observed(job(hostile("fork_loop", count=40, sleep=1), user_problem),
                        user=unprivileged_user.name, env={"HOME": str(unprivileged_user.home)})
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()
    assert seen.result.ok and seen.result.score == 40.0, seen.result.error
    assert "pids:userns" in seen.result.layers


@needs_watcher
def test_as_an_unprivileged_user_without_bwrap_a_delegated_pids_cgroup_holds_each_evaluation(
        unprivileged_user: User, user_problem: Path) -> None:
    where = cgroups.find()[0]
    delegated = where.parent / f"test-delegated-{unprivileged_user.name}"
    delegated.mkdir()  # what an administrator does: a folder, and its files, given to the user
    try:
        for path in (delegated, delegated / "cgroup.procs", delegated / "tasks"):
            if path.exists():
                os.chown(path, unprivileged_user.uid, -1)
        env = {"HOME": str(unprivileged_user.home), cgroups.ENV_VAR: str(delegated),
               "EVOFORGE_SANDBOX_LAYERS": "rlimits"}  # no user namespace: the cgroup is the limit
        seen = observed(job(hostile("fork_bomb"), user_problem, timeout_s=10),
                        user=unprivileged_user.name, env=env)
        assert seen.result.error_kind == "exception", seen.result.error
        assert seen.result.layers == ["rlimits", "reaper", "pids:cgroup"]
        peak = cgroups.Cgroup(delegated, where.version).peak()
        assert 0 < peak <= LIMIT, peak  # only the evaluation ever ran in the delegated cgroup
        assert [p.name for p in delegated.iterdir() if p.is_dir()] == []  # its cgroup is gone
    finally:
        cgroups.Cgroup(delegated, where.version).remove()


def container_like(uid: int | None = None) -> tuple[str, ...]:
    """Returns the wrapper that runs a command as a default Docker container would (as uid)."""
    return (sys.executable, str(Path(__file__).with_name("container_like.py")),
            *(("--user", str(uid)) if uid is not None else ()), "--")


@needs_watcher
def test_in_a_container_like_setting_root_is_held_to_the_limit_by_its_slot_uid(
        root_problem: Path) -> None:
    started = time.monotonic()
    seen = observed(job(hostile("fork_bomb"), root_problem, timeout_s=10), wrap=container_like())
    assert_bounded(seen, started)
    assert seen.result.layers == ["rlimits", "reaper", "pids:uid", "uid"]  # no namespaces here


@needs_watcher
def test_in_a_container_like_setting_a_user_without_namespaces_is_refused_with_the_fixes(
        unprivileged_user: User, user_problem: Path) -> None:
    seen = observed(job(hostile("fork_bomb"), user_problem, timeout_s=10),
                    wrap=container_like(unprivileged_user.uid),
                    env={"HOME": str(unprivileged_user.home)})
    assert seen.result.error_kind == "isolation", seen.result.error
    assert "no per-evaluation process limit is possible here" in seen.result.error
    for fix in ("run evoforge as root", cgroups.ENV_VAR, "allow unprivileged user namespaces"):
        assert fix in seen.result.error
    assert seen.peak <= 1 and seen.left == []  # nothing of the program ran


def test_a_thread_bomb_is_refused_at_the_thread_limit(root_problem: Path) -> None:
    result = evaluate_job(job(hostile("thread_bomb"), root_problem))
    assert result.error_kind == "exception", result.error
    made = int(result.error.split("thread refused after ")[1].split()[0])
    assert made < LIMIT, made  # threads count against the same limit as processes


def test_rlimit_nproc_counts_per_user_namespace_on_this_kernel(unprivileged_user: User) -> None:
    """The measured fact behind pids:userns: a user's own processes do not count inside a new user
    namespace, so RLIMIT_NPROC set there bounds only the sandbox."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap is not installed")
    sleepers = [unprivileged_user.start(["sleep", "60"]) for _ in range(30)]
    loop = ["python3", "-c", FORKS]
    sandboxed = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc",
                 "/proc", "--dev", "/dev", "--"]
    try:
        inside = subprocess.run(["runuser", "-u", unprivileged_user.name, "--", *sandboxed,
                                 "prlimit", "--nproc=20:20", "--", *loop],
                                capture_output=True, text=True, timeout=60, check=False)
        outside = subprocess.run(["runuser", "-u", unprivileged_user.name, "--", "prlimit",
                                  "--nproc=20:20", "--", *sandboxed, *loop],
                                 capture_output=True, text=True, timeout=60, check=False)
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()
    if "No permissions to create new namespace" in inside.stderr or "setting up uid map" in \
            inside.stderr:
        pytest.skip(f"unprivileged user namespaces are off here: {inside.stderr.strip()}")
    assert 10 < int(inside.stdout) < 20, inside  # bounded, and the 30 sleepers did not count
    assert outside.returncode != 0 or int(outside.stdout or 0) < 10, outside  # they count here


@pytest.mark.skipif(cgroups.find()[0] is None, reason=f"no pids cgroup: {cgroups.find()[1]}")
def test_without_a_slot_uid_root_falls_back_to_a_pids_cgroup_and_leaves_none_behind(
        root_problem: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV_VAR, "bwrap,seccomp")  # bwrap as root: no slot uid
    layers.reset()
    where = cgroups.find()[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = where.parent / f"{cgroups.PREFIX}{dead.pid}-1"  # what a crashed worker left
    stale.mkdir()
    before = {p.name for p in where.parent.iterdir() if p.name.startswith(cgroups.PREFIX)}
    try:
        result = evaluate_job(job((root_problem / "initial_program.py").read_text(), root_problem))
        bomb = evaluate_job(job(hostile("fork_bomb"), root_problem, timeout_s=10))
    finally:
        monkeypatch.undo()
        layers.reset()
    assert result.ok and result.layers == ["rlimits", "reaper", "pids:cgroup", "bwrap",
                                           "seccomp"], result
    assert "fork refused after" in bomb.error, bomb.error
    after = {p.name for p in where.parent.iterdir() if p.name.startswith(cgroups.PREFIX)}
    assert after <= before
    assert cgroups.sweep_stale(where) >= 0 and not stale.exists()
