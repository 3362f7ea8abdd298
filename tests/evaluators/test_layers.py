"""The isolation layers: detection and switches, what the sandbox looks like inside, the sweep."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from evaluators.evaluate import evaluate_job
from evaluators.isolation import layers, sandbox
from evaluators.isolation.limits import Limits
from evaluators.jobs import EvalJob, EvalResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOOD = FIXTURES / "problems" / "good"
BWRAP_INSTALLED = shutil.which("bwrap") is not None
IN_CI = bool(os.environ.get("CI"))  # CI's set-up installs every layer: a missing one must fail
needs_bwrap = pytest.mark.skipif("bwrap" not in layers.active_names() and not IN_CI,
                                 reason="bwrap layer not active here")

INSPECT = """
import json, os, socket

def solve():
    info = {"env": sorted(os.environ), "cwd": os.getcwd(), "home": os.environ["HOME"],
            "hostname": socket.gethostname(), "uid_map": open("/proc/self/uid_map").read(),
            "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "mounts": open("/proc/self/mounts").read(),
            "caps": [l for l in open("/proc/self/status") if l.startswith("CapEff")][0]}
    print("INFO" + json.dumps(info))
    return 1.0
"""


def evaluate(code: str, **limits: float) -> EvalResult:
    """Returns the result of code under the good problem's evaluator (score = solve())."""
    job = EvalJob(code=code, problem_dir=str(GOOD), evaluator_file=str(GOOD / "evaluator.py"),
                  **{"timeout_s": 20, **limits})
    return evaluate_job(job)


def inspect_sandbox() -> dict:
    result = evaluate(INSPECT)
    assert result.ok, result.error
    line = next(ln for ln in result.artifacts["stdout"].splitlines() if ln.startswith("INFO"))
    return json.loads(line[4:])


# ---------------------------------------------------------------- detection and switches

@pytest.mark.skipif(not BWRAP_INSTALLED and not IN_CI, reason="bwrap is not installed")
def test_layers_are_on_by_default_where_the_machine_allows_them(layer_env) -> None:
    layer_env.delenv(layers.ENV_VAR, raising=False)
    status = {s.name: s for s in layers.available_layers()}
    assert list(status) == ["rlimits", "reaper", "uid", "bwrap", "seccomp", "docker", "pids"]
    assert status["rlimits"].active and status["reaper"].active
    assert status["pids"].active, status["pids"].reason  # root: cgroup and uid; a user: userns
    assert status["uid"].active == (os.geteuid() == 0), status["uid"].reason
    assert status["bwrap"].active, status["bwrap"].reason
    try:
        import pyseccomp  # noqa: F401
    except ImportError:
        assert not status["seccomp"].active and "pip install pyseccomp" in status["seccomp"].reason
    else:
        assert status["seccomp"].active, status["seccomp"].reason
    assert str(status["bwrap"]).startswith("bwrap: active — ")


def test_a_layer_left_out_of_the_switch_is_off_with_the_reason(layer_env) -> None:
    layer_env.setenv(layers.ENV_VAR, "rlimits")
    status = {s.name: s for s in layers.available_layers()}
    assert not status["bwrap"].active and not status["seccomp"].active
    assert status["bwrap"].reason == "turned off by EVOFORGE_SANDBOX_LAYERS"
    assert not status["uid"].active
    assert set(layers.active_names()) <= {"rlimits", "reaper", "pids"}
    assert layers.required() == ("rlimits", "reaper", "pids")
    result = evaluate(INSPECT)  # without bwrap the evaluation still runs, on the base layers
    if status["pids"].active:  # root here: a pids cgroup per evaluation
        assert result.ok, result.error
        assert "bwrap" not in result.layers and "pids:cgroup" in result.layers, result.layers
    else:  # a user without bwrap has no process limit: strict refuses
        assert result.error_kind == "isolation" and "pids" in result.error, result.error


def test_an_unknown_layer_name_is_rejected_naming_the_choices(layer_env) -> None:
    layer_env.setenv(layers.ENV_VAR, "rlimits,bwarp")
    with pytest.raises(ValueError, match=r"unknown layer.*bwarp.*"
                                         r"choose from rlimits, reaper, pids, uid, bwrap"):
        layers.available_layers()


def test_seccomp_without_bwrap_is_reported_as_missing_and_why(layer_env) -> None:
    layer_env.setenv(layers.ENV_VAR, "seccomp")
    status = {s.name: s for s in layers.available_layers()}
    assert not status["seccomp"].active and "needs bwrap" in status["seccomp"].reason


def test_the_decision_is_logged_once_per_process(layer_env, caplog) -> None:
    layer_env.delenv(layers.ENV_VAR, raising=False)
    with caplog.at_level(logging.INFO, logger="evoforge.sandbox"):
        layers.available_layers()
        layers.available_layers()
        evaluate("def solve():\n    return 1.0\n")
    lines = [r.getMessage() for r in caplog.records if r.name == "evoforge.sandbox"]
    assert len(lines) == 7 and all(ln.startswith("sandbox layer ") for ln in lines)


# ---------------------------------------------------------------- inside the sandbox

@needs_bwrap
def test_the_sandbox_sees_only_the_minimal_environment_and_its_own_processes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOFORGE_FAKE_SECRET", "s3cret")
    info = inspect_sandbox()
    expected = set(sandbox.minimal_env("/x")) | {layers.RUN_VAR, "PWD"}  # PWD: bwrap --chdir
    expected |= {"EVOFORGE_EVAL_SEED"}  # the job's seed (evaluators.harness.SEED_VAR)
    assert set(info["env"]) == expected
    assert "EVOFORGE_FAKE_SECRET" not in info["env"]
    assert info["home"] == info["cwd"] and info["cwd"].startswith("/tmp/evoforge-eval-")
    assert info["hostname"] == "evoforge-sandbox" != os.uname().nodename
    assert max(info["pids"]) < 10  # a new pid namespace
    assert info["caps"].split()[1] == "0000000000000000"


@needs_bwrap
def test_system_dirs_are_read_only_and_tmp_is_a_size_limited_tmpfs() -> None:
    mounts = {ln.split()[1]: ln.split() for ln in inspect_sandbox()["mounts"].splitlines()}
    assert mounts["/usr"][3].startswith("ro")
    assert mounts["/"][3].startswith("ro")
    assert mounts["/tmp"][2] == "tmpfs" and f"size={64 * 1024}k" in mounts["/tmp"][3]


@needs_bwrap
def test_bwrap_args_unshare_everything_and_clear_the_environment(tmp_path: Path) -> None:
    args = layers.bwrap_args(cwd=str(tmp_path), writable=[], readable=[str(GOOD)],
                             python=sys.executable, env={"A": "1"}, limits=Limits())
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in args
    assert args[args.index("--setenv") + 1:args.index("--setenv") + 3] == ["A", "1"]
    i = args.index(str(GOOD.resolve()))
    assert args[i - 1] == "--ro-bind"


def test_the_seccomp_filter_is_valid_bpf() -> None:
    if not IN_CI:
        pytest.importorskip("pyseccomp")
    bpf = layers.seccomp_bpf()
    assert len(bpf) > 64 and len(bpf) % 8 == 0  # struct sock_filter is 8 bytes


# ---------------------------------------------------------------- process hygiene

def test_the_evaluating_process_is_a_child_subreaper() -> None:
    assert layers.become_subreaper() and layers.become_subreaper()
    value = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(37, ctypes.byref(value), 0, 0, 0) == 0  # PR_GET_CHILD_SUBREAPER
    assert value.value == 1


def test_sweep_kills_only_the_processes_of_its_own_evaluation() -> None:
    run_id, other_id = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"
    mine = subprocess.Popen(["sleep", "60"], env={layers.RUN_VAR: run_id},
                            start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], env={layers.RUN_VAR: other_id})
    plain = subprocess.Popen(["sleep", "60"])
    for proc in (mine, other):  # until exec, /proc/PID/environ is still the parent's
        deadline = time.monotonic() + 5
        while layers.RUN_VAR.encode() not in Path(f"/proc/{proc.pid}/environ").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    try:
        assert layers.sweep(run_id) == [mine.pid]
        assert mine.wait(timeout=5) is not None or mine.returncode is not None
        assert other.poll() is None and plain.poll() is None
    finally:
        for proc in (mine, other, plain):
            proc.kill()
            proc.wait()


def test_a_setsid_daemon_is_killed_by_the_sweep_even_without_bwrap(layer_env) -> None:
    layer_env.setenv(layers.ENV_VAR, "rlimits")
    tag = f"evoforge-daemon-{uuid.uuid4().hex}"
    code = (FIXTURES / "hostile" / "setsid_daemon.py").read_text().replace("__TAG__", tag)
    result = evaluate(code)
    assert result.ok and result.score == 7.0, result.error
    time.sleep(0.2)
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, tag)]
    assert left == []


def _cmdline_has(proc: Path, tag: str) -> bool:
    try:
        stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        return tag.encode() in (proc / "cmdline").read_bytes() and stat != "Z"
    except OSError:
        return False


def test_concurrent_evaluations_do_not_kill_each_other() -> None:
    slow = "import time\n\ndef solve():\n    time.sleep(2)\n    return 3.0\n"
    results: list[EvalResult] = []
    thread = threading.Thread(target=lambda: results.append(evaluate(slow)))
    thread.start()
    time.sleep(0.3)
    quick = [evaluate("def solve():\n    return 1.0\n") for _ in range(5)]
    thread.join()
    assert all(r.ok for r in quick)
    assert results[0].ok and results[0].score == 3.0, results[0].error


def zombie_children() -> list[int]:
    """Returns this process's children that have ended and wait to be reaped."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("spec", ["rlimits", "rlimits,bwrap,seccomp"])
def test_strays_of_a_killed_evaluation_are_reaped_not_left_as_zombies(layer_env, spec) -> None:
    layer_env.setenv(layers.ENV_VAR, spec)
    code = (FIXTURES / "hostile" / "cpu_loop.py").read_text().replace("__PID_FILE__", "pids")
    assert evaluate(code, timeout_s=1).error_kind == "timeout"
    time.sleep(0.3)  # a namespace's init may end just after the evaluation
    layers.sweep("no-such-run")  # every later evaluation sweeps the same way
    assert zombie_children() == []


def test_a_forked_worker_process_is_made_a_subreaper_again() -> None:
    """Celery's pool processes are forked from the worker: the kernel flag is not inherited, so
    each must set it itself, or orphaned sandbox processes pile up as zombies under its uids."""
    import ctypes

    assert layers.become_subreaper()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        libc = ctypes.CDLL(None)
        flag = ctypes.c_int()
        libc.prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
        before = flag.value
        layers.become_subreaper()
        libc.prctl(37, ctypes.byref(flag), 0, 0, 0)
        os.write(write, f"{before} {flag.value}".encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 64).decode() == "0 1"
