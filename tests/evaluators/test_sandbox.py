"""The sandbox with real processes: limits, environment, output caps, hostile candidates."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators.evaluate import evaluate_job
from evaluators.isolation import layers, sandbox
from evaluators.isolation.limits import Limits
from evaluators.jobs import EvalJob

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOOD = FIXTURES / "problems" / "good"
PY = sys.executable


@pytest.fixture(autouse=True)
def base_layers_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Runs on the base sandbox (rlimits, process group, sweep): these tests read host pids from
    files outside the work dir, which bwrap forbids; tests/evaluators/test_hostile.py covers it."""
    monkeypatch.setenv(layers.ENV_VAR, "rlimits")
    layers.reset()
    yield
    layers.reset()


def good_job(code: str | None = None, **limits: float) -> EvalJob:
    """Returns a job for the good fixture problem (its evaluator returns solve() as the score)."""
    return EvalJob(code=code if code is not None else (GOOD / "initial_program.py").read_text(),
                   problem_dir=str(GOOD), evaluator_file=str(GOOD / "evaluator.py"), **limits)


def hostile(name: str, pid_file: Path | None = None) -> str:
    """Returns the text of a hostile candidate, with its pid file placeholder filled in."""
    text = (FIXTURES / "hostile" / f"{name}.py").read_text()
    return text.replace("__PID_FILE__", str(pid_file)) if pid_file else text


def alive(pid: int, grace_s: float = 2.0) -> bool:
    """Returns True when pid is still running after grace_s (SIGKILL lands within microseconds; a
    zombie counts as dead)."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return False
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.01)


def group_members(pgid: int) -> list[int]:
    """Returns the processes of group pgid that are still running after a short grace."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and alive(int(entry.name)):
                members.append(int(entry.name))
    return members


def assert_next_evaluation_works() -> None:
    result = evaluate_job(good_job())
    assert result.ok and result.score == 1.0, result.error


# ---------------------------------------------------------------- sandbox.run


def test_environment_holds_only_the_minimal_variables(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOFORGE_TEST_SECRET", "hunter2")
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    out = sandbox.run([PY, "-c", code], cwd=str(tmp_path), limits=Limits(timeout_s=10),
                      env={"EXTRA": "1"})
    env = __import__("json").loads(out.stdout)
    assert "hunter2" not in out.stdout
    assert set(env) == {"PATH", "HOME", "TMPDIR", "EXTRA", *sandbox.BASE_ENV}
    assert env["HOME"] == str(tmp_path) and env["PYTHONHASHSEED"] == "0"


@pytest.mark.parametrize("through", ["prlimit", "preexec_fn"])
def test_rlimits_are_set_before_the_program_starts(through: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if through == "preexec_fn":
        monkeypatch.setattr(sandbox, "PRLIMIT", None)
    else:
        assert sandbox.PRLIMIT, "prlimit (util-linux) is missing on this machine"
    code = ("import resource as r; print([r.getrlimit(x)[0] for x in "
            "(r.RLIMIT_AS, r.RLIMIT_CPU, r.RLIMIT_NOFILE, r.RLIMIT_FSIZE, r.RLIMIT_CORE)])")
    out = sandbox.run([PY, "-c", code], cwd=str(tmp_path),
                      limits=Limits(timeout_s=2.5, memory_mb=300, open_files=64))
    assert out.stdout.strip() == str([300 * 2**20, 4, 64, 64 * 2**20, 0])
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY  # parent untouched


def test_wall_clock_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    script = "sleep 300 & echo $!; trap '' TERM; while :; do :; done"
    out = sandbox.run(["sh", "-c", script], cwd=str(tmp_path), limits=Limits(timeout_s=1))
    assert out.timed_out
    assert out.describe() == "exceeded 1 s wall clock; the process group was killed"
    assert 1.0 <= out.duration_s < 5
    assert not alive(int(out.stdout.split()[0]))


def test_huge_output_keeps_head_and_tail_with_a_marker(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('A' * 100 + 'x' * 5_000_000 + 'Z' * 100)"
    out = sandbox.run([PY, "-c", code], cwd=str(tmp_path),
                      limits=Limits(timeout_s=20, output_bytes=1000))
    assert out.returncode == 0 and out.stdout_dropped == 5_000_200 - 1000
    assert out.stdout.startswith("A" * 100) and out.stdout.endswith("Z" * 100)
    assert f"[... {out.stdout_dropped} bytes dropped ...]" in out.stdout


def test_stdin_is_delivered_and_stderr_kept_apart(tmp_path: Path) -> None:
    code = "import sys; data = sys.stdin.read(); print(len(data)); print('oops', file=sys.stderr)"
    out = sandbox.run([PY, "-c", code], cwd=str(tmp_path), limits=Limits(timeout_s=10),
                      stdin=b"y" * 300_000)
    assert out.stdout.strip() == "300000" and out.stderr.strip() == "oops"


def test_a_signal_death_is_described_by_name(tmp_path: Path) -> None:
    out = sandbox.run([PY, "-c", "import ctypes; ctypes.string_at(0)"], cwd=str(tmp_path),
                      limits=Limits(timeout_s=10))
    assert out.signal == "SIGSEGV" and out.describe() == "killed by SIGSEGV (segmentation fault)"


def test_wrappers_rewrite_the_command_line_in_order(tmp_path: Path) -> None:
    def add(name: str) -> sandbox.Wrapper:
        return lambda argv, limits: ["env", f"{name}={limits.timeout_s:g}", *argv]

    out = sandbox.run(["sh", "-c", "echo $OUTER $INNER"], cwd=str(tmp_path),
                      limits=Limits(timeout_s=7), wrap=[add("INNER"), add("OUTER")])
    assert out.stdout.strip() == "7 7"


def test_an_escaped_child_holding_the_pipes_cannot_hang_the_caller(tmp_path: Path) -> None:
    code = ("import subprocess; p = subprocess.Popen(['sleep', '300'], start_new_session=True); "
            "print(p.pid)")
    out = sandbox.run([PY, "-c", code], cwd=str(tmp_path),
                      limits=Limits(timeout_s=10, drain_s=0.5))
    escaped = int(out.stdout.split()[0])
    try:
        assert out.returncode == 0 and out.pipes_held and out.duration_s < 3
    finally:
        os.kill(escaped, 9)  # started by this test, through the sandbox


# ---------------------------------------------------------------- hostile candidates, end to end


def test_infinite_cpu_loop_is_killed_and_recorded_as_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    result = evaluate_job(good_job(hostile("cpu_loop", pids), timeout_s=2))
    assert result.error_kind == "timeout"
    assert result.error == "exceeded 2 s wall clock; the process group was killed"
    runner_pid, helper_pid = map(int, pids.read_text().split())
    assert not alive(runner_pid) and not alive(helper_pid)
    assert group_members(runner_pid) == []
    assert_next_evaluation_works()


def test_sleeping_loop_that_ignores_sigterm_is_recorded_as_timeout() -> None:
    started = time.monotonic()
    result = evaluate_job(good_job(hostile("sleep_loop"), timeout_s=1.5))
    assert result.error_kind == "timeout" and "1.5 s wall clock" in result.error
    assert time.monotonic() - started < 6
    assert_next_evaluation_works()


@pytest.mark.parametrize("name", ["memory_bomb", "memory_growth"])
def test_memory_bomb_is_recorded_as_memory(name: str) -> None:
    result = evaluate_job(good_job(hostile(name), timeout_s=20, memory_mb=300))
    assert result.error_kind == "memory", result.error
    assert "300 MiB address-space limit" in result.error and "program.py" in result.error
    assert "raise evaluation.memory_mb" in result.error
    assert_next_evaluation_works()


def test_os_exit_in_the_program_is_recorded_as_crash() -> None:
    result = evaluate_job(good_job(hostile("os_exit")))
    assert result.error_kind == "crash"
    assert "exited with code 0 before writing a result" in result.error
    assert "os._exit()" in result.error
    assert_next_evaluation_works()


def test_ctypes_segfault_is_recorded_as_crash_naming_sigsegv() -> None:
    result = evaluate_job(good_job(hostile("segfault")))
    assert result.error_kind == "crash"
    assert "killed by SIGSEGV (segmentation fault) before writing a result" in result.error
    assert_next_evaluation_works()


def test_huge_stdout_is_capped_and_the_evaluation_finishes() -> None:
    result = evaluate_job(good_job(hostile("huge_stdout"), timeout_s=30))
    assert result.ok and result.score == 2.0
    stdout = result.artifacts["stdout"]
    assert len(stdout) < 10_000 and stdout.rstrip().endswith("THE-END")
    assert "characters dropped" in stdout
    assert_next_evaluation_works()


def test_child_keeping_the_pipe_open_after_the_program_ends_does_not_block(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    result = evaluate_job(good_job(hostile("pipe_holder", pid_file), timeout_s=20))
    assert result.ok and result.score == 3.0
    assert time.monotonic() - started < 5
    assert not alive(int(pid_file.read_text()))
    assert_next_evaluation_works()


def test_escaped_child_holding_the_pipe_costs_only_the_drain_time(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    result = evaluate_job(good_job(hostile("escaped_pipe_holder", pid_file), timeout_s=20))
    assert result.ok and result.score == 4.0
    assert time.monotonic() - started < Limits().drain_s + 3
    assert not alive(int(pid_file.read_text()))  # escaped the group kill, not the sweep
    assert_next_evaluation_works()
