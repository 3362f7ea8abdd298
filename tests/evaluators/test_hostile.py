"""Hostile candidates under the default layers (uid + bwrap + seccomp): contained, recorded, host
untouched, both in a fresh process per evaluation and pre-forked (one warm server per problem).

Each test asserts the host side (the file is absent, the listener saw nothing, the process lives,
nothing of the evaluation is left running) and that a normal evaluation right after still works.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators import pool
from evaluators.evaluate import evaluate_job
from evaluators.isolation import layers
from evaluators.jobs import EvalJob, EvalResult
from service.problems.load import load_problem

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOOD = FIXTURES / "problems" / "good"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    "bwrap" not in layers.active_names() and not os.environ.get("CI"),  # CI installs every layer
    reason="bwrap layer not active here: " + str(next(
        s for s in layers.available_layers() if s.name == "bwrap")))


@pytest.fixture(autouse=True, params=["fresh", "prefork"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs every test with a fresh process per evaluation and with a pre-forked server."""
    global PREFORK
    PREFORK = request.param == "prefork"
    yield request.param
    PREFORK = False
    pool.shutdown()


PREFORK = False


def hostile(name: str, **fill: object) -> str:
    """Returns the text of a hostile candidate with its __PLACEHOLDERS__ filled in."""
    text = (FIXTURES / "hostile" / f"{name}.py").read_text()
    for key, value in fill.items():
        text = text.replace(f"__{key.upper()}__", str(value))
    return text


def evaluate(code: str, problem: Path = GOOD, **limits: float) -> EvalResult:
    """Returns the result of code scored by the good problem's evaluator (score = solve())."""
    job = EvalJob(code=code, problem_dir=str(problem), evaluator_file=str(problem / "evaluator.py"),
                  prefork=PREFORK, **{"timeout_s": 20, **limits})
    return evaluate_job(job)


def marked_processes(tag: bytes = f"{layers.RUN_VAR}={os.getpid()}-".encode()) -> list[int]:
    """Returns host processes whose environment or command line holds tag (by default: marked as
    an evaluation of this test process) after a short grace, leaving out the idle pre-forked
    servers themselves (not the candidates they ran)."""
    deadline, found = time.monotonic() + 2.0, []
    while True:
        found, servers = [], pool.idle_server_pids()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    data = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    continue
                if tag in data and state != "Z" and int(entry.name) not in servers:
                    found.append(int(entry.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def assert_contained_and_next_works() -> None:
    left = marked_processes()
    assert left == [], f"still running on the host: {[_cmdline(pid) for pid in left]}"
    result = evaluate((GOOD / "initial_program.py").read_text())
    assert result.ok and result.score == 1.0, result.error


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:300]
    except OSError:
        return f"{pid} (gone)"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Yields a TCP server on 127.0.0.1 (random port) that never accepts by itself."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def assert_network_denied(result: EvalResult) -> None:
    """Asserts the connection failed in the program: seccomp's EPERM, else the empty net ns."""
    assert result.error_kind == "exception", result.error
    if "seccomp" in layers.active_names():
        assert "PermissionError: [Errno 1] Operation not permitted at program.py" in result.error
    else:
        assert "Network is unreachable" in result.error or "refused" in result.error, result.error


def test_connecting_to_a_host_tcp_listener_is_denied_and_the_listener_sees_nothing(
        listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = evaluate(hostile("net_connect", host="127.0.0.1", port=port))
    assert_network_denied(result)
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert_contained_and_next_works()


@pytest.mark.parametrize("port", [5432, 6379, 5672], ids=["postgresql", "redis", "rabbitmq"])
def test_connecting_to_host_services_is_denied(port: int) -> None:
    assert_network_denied(evaluate(hostile("net_connect", host="127.0.0.1", port=port)))
    assert_contained_and_next_works()


def test_the_parents_secrets_and_other_environments_are_invisible(
        monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"evoforge-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("EVOFORGE_FAKE_API_KEY", secret)
    with subprocess.Popen(["sleep", "30"], env={**os.environ}) as neighbour:
        try:
            result = evaluate(hostile("read_environ", secret=secret))
        finally:
            neighbour.kill()
    assert result.ok, result.error
    assert result.score <= 4  # only the sandbox's own few processes are visible
    assert secret not in repr(result.to_dict())
    assert_contained_and_next_works()


@pytest.mark.parametrize("where", ["etc", "usr", "home", "problem", "tmp"])
def test_writes_outside_the_work_dir_do_not_reach_the_host(where: str, tmp_path: Path) -> None:
    problem = tmp_path / "problem"
    shutil.copytree(GOOD, problem)
    before = (problem / "evaluator.py").read_bytes()
    name = f"evoforge-hostile-{uuid.uuid4().hex[:8]}"
    target = {"etc": Path("/etc") / name, "usr": Path("/usr") / name,
              "home": Path.home() / name, "problem": problem / "evaluator.py",
              "tmp": Path("/tmp") / name}[where]
    result = evaluate(hostile("write_outside", target=target), problem=problem)
    if where == "tmp":  # a private tmpfs: the write succeeds and vanishes with the sandbox
        assert result.ok and result.score == 1.0, result.error
    else:
        assert result.error_kind == "exception"
        assert any(w in result.error for w in ("Read-only file system", "No such file")), \
            result.error
    if where == "problem":
        assert (problem / "evaluator.py").read_bytes() == before
    else:
        assert not target.exists()
    assert_contained_and_next_works()


def test_signalling_a_host_process_does_not_reach_it() -> None:
    with subprocess.Popen(["sleep", "60"]) as victim:
        try:
            result = evaluate(hostile("signal_host", pid=victim.pid))
            time.sleep(0.2)
            assert victim.poll() is None, "the host process was killed from the sandbox"
        finally:
            victim.kill()
    assert result.error_kind == "exception" and "ProcessLookupError" in result.error
    assert_contained_and_next_works()


@pytest.mark.skipif("seccomp" not in layers.active_names() and not os.environ.get("CI"),
                    reason="seccomp layer not active")
def test_ptrace_is_denied_with_a_clear_permission_error() -> None:
    result = evaluate(hostile("ptrace_host"))
    assert result.error_kind == "exception"
    assert "Operation not permitted" in result.error
    assert_contained_and_next_works()


def test_a_setsid_daemon_does_not_outlive_the_evaluation() -> None:
    tag = f"evoforge-daemon-{uuid.uuid4().hex}"
    result = evaluate(hostile("setsid_daemon", tag=tag))
    assert result.ok and result.score == 7.0, result.error
    assert marked_processes(tag.encode()) == []
    assert_contained_and_next_works()


def test_file_descriptor_exhaustion_is_recorded_and_the_host_keeps_its_descriptors() -> None:
    if PREFORK:  # a warm server holds its pipes, uid lease and filter: count them in
        assert evaluate((GOOD / "initial_program.py").read_text()).ok
    before = len(os.listdir("/proc/self/fd"))
    result = evaluate(hostile("fd_exhaustion"))
    assert not result.ok
    assert "Too many open files" in f"{result.error} {result.artifacts}", result.error
    assert len(os.listdir("/proc/self/fd")) <= before + 1
    assert_contained_and_next_works()


def test_a_huge_single_file_stops_at_the_file_size_limit() -> None:
    result = evaluate(hostile("huge_file"))
    assert result.error_kind == "exception" and "File too large" in result.error
    assert_contained_and_next_works()


def test_an_infinite_cpu_loop_with_a_helper_is_killed_as_a_whole() -> None:
    result = evaluate(hostile("cpu_loop", pid_file="pids"), timeout_s=2)
    assert result.error_kind == "timeout"
    assert "exceeded 2 s wall clock" in result.error
    assert_contained_and_next_works()


def test_a_memory_bomb_is_recorded_as_memory() -> None:
    result = evaluate(hostile("memory_bomb"), memory_mb=300)
    assert result.error_kind == "memory" and "300 MiB" in result.error, result.error
    assert_contained_and_next_works()


def test_a_ctypes_segfault_is_recorded_as_a_crash_naming_sigsegv() -> None:
    result = evaluate(hostile("segfault"))
    assert result.error_kind == "crash" and "SIGSEGV" in result.error, result.error
    assert_contained_and_next_works()


def test_huge_stdout_is_capped() -> None:
    result = evaluate(hostile("huge_stdout"), timeout_s=30)
    assert result.ok and "characters dropped" in result.artifacts["stdout"]
    assert_contained_and_next_works()


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "problems").iterdir()
                                        if (p / "evaluator.py").is_file()))
def test_the_real_problems_still_score_their_initial_program(name: str) -> None:
    problem = REPO / "problems" / name  # its seed may be a folder: the loader reads either form
    result = evaluate(load_problem(problem).initial_code, problem=problem,
                      timeout_s=120, memory_mb=2048)
    assert result.ok, f"{name}: {result.error}\n{result.artifacts.get('stderr')}"


def test_a_fork_bomb_is_refused_by_the_per_evaluation_process_limit() -> None:
    if "pids" not in layers.active_names():  # nothing would bound the bomb: never run it then
        if os.environ.get("CI"):
            pytest.fail(f"pids layer missing in CI: {layers.available_layers()}")
        pytest.skip("no per-evaluation process limit here")
    started = time.monotonic()
    result = evaluate(hostile("fork_bomb"), timeout_s=10)
    assert result.error_kind == "exception", result.error
    assert "fork refused after" in result.error and "Resource temporarily unavailable" in \
        result.error
    assert any(name.startswith("pids:") for name in result.layers), result.layers
    assert time.monotonic() - started < 8  # refused at once, not stopped by the wall clock
    assert_contained_and_next_works()
