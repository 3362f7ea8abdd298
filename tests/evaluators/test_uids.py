"""The slot uid layer: leases, the kill of a uid's processes, reachability, and what it contains."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators.evaluate import evaluate_job
from evaluators.isolation import detect, layers, uids
from evaluators.jobs import EvalJob, EvalResult
from tests.evaluators.test_hostile import hostile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOOD = FIXTURES / "problems" / "good"
IN_CI = bool(os.environ.get("CI"))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="slot uids need root")


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """Yields a fresh folder that other users can enter (pytest's tmp_path is under a 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="evoforge-uid-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def evaluate(code: str, problem: Path = GOOD, **fields: object) -> EvalResult:
    job = EvalJob(code=code, problem_dir=str(problem), evaluator_file=str(problem / "evaluator.py"),
                  **{"timeout_s": 20, **fields})
    return evaluate_job(job)


def slot_uid_processes() -> list[int]:
    """Returns live processes of this test process's evaluations running as a slot uid."""
    ids, found, mark = uids.uid_range(), [], f"{layers.RUN_VAR}={os.getpid()}-".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                info = entry.stat()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if info.st_uid in ids and state != "Z" and mark in _environ(entry):
                found.append(int(entry.name))
    return found


def _environ(proc: Path) -> bytes:
    try:
        return (proc / "environ").read_bytes()
    except OSError:
        return b""


def use_layers(env: pytest.MonkeyPatch, spec: str) -> None:
    env.setenv(layers.ENV_VAR, spec)
    if "uid" not in layers.active_names():
        if IN_CI:
            pytest.fail(f"uid layer missing in CI: {layers.available_layers()}")
        pytest.skip("uid layer not active here (needs root)")


# ---------------------------------------------------------------- configuration and leases

@pytest.mark.parametrize("spec", ["61000", "10-20", "7000-6000", "a-b"])
def test_a_bad_uid_range_is_rejected_naming_the_variable_and_an_example(spec: str) -> None:
    with pytest.raises(ValueError, match=f"{uids.RANGE_VAR}=.*{uids.DEFAULT_RANGE}"):
        uids.uid_range(spec)


def test_the_default_range_needs_no_passwd_entries() -> None:
    ids = uids.uid_range("")
    assert ids == range(61000, 61256)


@needs_root
def test_leases_are_exclusive_across_processes_and_freed_when_the_owner_dies() -> None:
    ids = range(62900, 62902)
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time; from evaluators.isolation import uids; "
                                f"l = uids.acquire(range({ids.start}, {ids.stop})); "
                                "print(l.uid, flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        held = int(holder.stdout.readline())
        mine = uids.acquire(ids)
        assert mine.uid != held
        with pytest.raises(RuntimeError, match=r"all 2 sandbox uids .* are in use; widen"):
            uids.acquire(ids)
        mine.release()
    finally:
        holder.kill()
        holder.wait()
    again = [uids.acquire(ids), uids.acquire(ids)]  # the dead holder's uid is free again
    assert sorted(lease.uid for lease in again) == list(ids)
    for lease in again:
        lease.release()


@needs_root
def test_releasing_a_lease_kills_every_process_of_its_uid() -> None:
    lease = uids.acquire()
    other = uids.acquire()
    procs = [subprocess.Popen(["sleep", "60"], user=lease.uid, group=lease.gid, extra_groups=[],
                              start_new_session=True) for _ in range(2)]
    bystander = subprocess.Popen(["sleep", "60"], user=other.uid, group=other.gid,
                                 extra_groups=[])
    try:
        lease.release()
        assert all(p.wait(timeout=5) == -9 for p in procs)
        assert bystander.poll() is None
    finally:
        other.release()
        bystander.wait(timeout=5)


def test_unreachable_names_the_folder_that_blocks_the_uid(open_tmp: Path) -> None:
    closed = open_tmp / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    open_dir = open_tmp / "open"
    open_dir.mkdir(mode=0o755)
    why = uids.unreachable(closed / "inner", 61000)
    assert why is not None and f"{closed} is mode 0700" in why and "cannot enter" in why
    assert uids.unreachable(open_dir, 61000) is None
    assert "cannot write" in uids.unreachable(open_dir, 61000, write=True)


@needs_root
def test_an_interpreter_under_a_private_folder_is_reported_with_the_fix(open_tmp: Path) -> None:
    private = open_tmp / "private"
    private.mkdir(mode=0o700)
    python = private / "python3"
    python.symlink_to(sys.executable)
    why = uids.interpreter_problem(str(python), 61000)
    assert why is not None and f"{private} is mode 0700" in why and "/usr/bin/python3" in why


# ---------------------------------------------------------------- what the uid contains

@needs_root
@pytest.mark.parametrize("spec", ["rlimits,uid", "rlimits,uid,bwrap,seccomp"])
def test_a_fork_bomb_is_stopped_by_rlimit_nproc_under_the_slot_uid(layer_env, spec: str) -> None:
    use_layers(layer_env, spec)
    started = time.monotonic()
    result = evaluate(hostile("fork_bomb"), timeout_s=10)
    assert result.error_kind == "exception", result.error
    assert "fork refused after" in result.error and "Resource temporarily unavailable" in \
        result.error
    assert time.monotonic() - started < 8  # refused at once, not stopped by the wall clock
    assert slot_uid_processes() == []
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork
    ok = evaluate((GOOD / "initial_program.py").read_text())
    assert ok.ok and ok.score == 1.0, ok.error


@needs_root
def test_under_the_slot_uid_alone_host_processes_cannot_be_signalled(layer_env) -> None:
    use_layers(layer_env, "rlimits,uid")
    with subprocess.Popen(["sleep", "60"]) as victim:
        try:
            result = evaluate(hostile("signal_host", pid=victim.pid))
            time.sleep(0.2)
            assert victim.poll() is None, "the host process was killed from the sandbox"
        finally:
            victim.kill()
    assert result.error_kind == "exception" and "PermissionError" in result.error, result.error


@needs_root
def test_under_the_slot_uid_alone_other_environments_are_unreadable(layer_env) -> None:
    use_layers(layer_env, "rlimits,uid")
    secret = f"evoforge-secret-{uuid.uuid4().hex}"
    layer_env.setenv("EVOFORGE_FAKE_API_KEY", secret)
    with subprocess.Popen(["sleep", "30"], env={**os.environ}) as neighbour:
        try:
            result = evaluate(hostile("read_environ", secret=secret))
        finally:
            neighbour.kill()
    assert result.ok, result.error
    assert secret not in repr(result.to_dict())


@needs_root
def test_a_problem_inside_a_private_folder_runs_under_the_slot_uid_from_a_staged_copy(
        layer_env, open_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    use_layers(layer_env, "rlimits,uid")
    private = open_tmp / "private"
    private.mkdir(mode=0o700)
    shutil.copytree(GOOD, private / "good")
    with caplog.at_level(logging.WARNING, logger="evoforge.sandbox"):
        result = evaluate((GOOD / "initial_program.py").read_text(), problem=private / "good")
    assert result.ok and result.score == 1.0, result.error
    assert "uid" in result.layers and "pids:uid" in result.layers, result.layers
    assert not [r for r in caplog.records if "uid" in r.getMessage()]


@needs_root
def test_when_every_slot_uid_is_busy_a_strict_evaluation_is_refused_naming_the_fix(
        layer_env) -> None:
    use_layers(layer_env, "rlimits,uid")
    layer_env.setenv(uids.RANGE_VAR, "62950-62950")
    held = uids.acquire()
    try:
        result = evaluate((GOOD / "initial_program.py").read_text())
    finally:
        held.release()
    assert result.error_kind == "isolation", result.error
    assert "are in use; widen the range" in result.error
    assert "evaluation.isolation = 'best-effort'" in result.error


@needs_root
def test_when_every_slot_uid_is_busy_best_effort_runs_without_one_and_records_it(
        layer_env, caplog: pytest.LogCaptureFixture) -> None:
    use_layers(layer_env, "rlimits,uid")
    layer_env.setenv(uids.RANGE_VAR, "62951-62951")
    held = uids.acquire()
    try:
        with caplog.at_level(logging.WARNING, logger="evoforge.sandbox"):
            result = evaluate((GOOD / "initial_program.py").read_text(), isolation="best-effort")
    finally:
        held.release()
    assert result.ok and result.score == 1.0, result.error
    assert "uid" not in result.layers and "pids:uid" not in result.layers, result.layers
    assert any("are in use; widen the range" in r.getMessage() for r in caplog.records)


@needs_root
def test_where_bwrap_cannot_run_unprivileged_bwrap_is_kept_and_the_uid_dropped_saying_why(
        layer_env) -> None:
    real = detect._bwrap_status

    def no_unprivileged_userns(as_slot_uid: bool) -> layers.LayerStatus:
        if as_slot_uid:  # what a machine without unprivileged user namespaces answers
            return layers.LayerStatus("bwrap", False, "probe failed (setting up uid map: "
                                      "Permission denied)")
        return real(False)

    layer_env.setattr(detect, "_bwrap_status", no_unprivileged_userns)
    layer_env.delenv(layers.ENV_VAR, raising=False)
    status = {s.name: s for s in layers.available_layers()}
    if not status["bwrap"].active and not IN_CI:
        pytest.skip(f"bwrap not usable here at all: {status['bwrap'].reason}")
    assert status["bwrap"].active and "as this user" in status["bwrap"].reason
    assert not status["uid"].active
    assert "bwrap cannot run unprivileged" in status["uid"].reason
    assert "uid map" in status["uid"].reason
    assert "bwrap,seccomp to leave the slot uids out" in status["uid"].reason  # the fix
