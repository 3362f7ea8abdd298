"""The fork server on its own: `python -m evaluators.forkserver SPEC` started here without the host
side (no layers, no slot uid), spoken to in its frames (evaluators/wire.py): one request at a time
on stdin, one answer frame on stdout with the request's nonce."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluators import forkserver, wire
from evaluators.harness import SEED_VAR
from evaluators.isolation import layers, leftovers
from evaluators.jobs import EvalJob, EvalResult, FailureKind

# Reports the pid that imported it, the pid that scores, how often it was imported, and the seed.
EVALUATOR = f'''
import importlib.util, os, sys

IMPORTED_BY = os.getpid()
IMPORTS = int(os.environ.get("EVOFORGE_PROBE_IMPORTS", "0")) + 1
os.environ["EVOFORGE_PROBE_IMPORTS"] = str(IMPORTS)
print("evaluator imported", file=sys.stderr)


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {{"combined_score": float(module.solve()), "imported_by": float(IMPORTED_BY),
            "scored_by": float(os.getpid()), "imports": float(IMPORTS),
            "seed": float(os.environ["{SEED_VAR}"])}}
'''
ONE = "def solve():\n    return 1.0\n"


class Server:
    """A fork server process for one problem folder, and the test's end of its pipes."""

    def __init__(self, root: Path, problem: Path, role: str = "evaluate") -> None:
        root.mkdir()
        self.problem = problem
        self.entry = "construct" if role == "produce" else ""
        loader = self.job("")
        spec = {"root": str(root), "private_dirs": [], "job": loader.to_dict(),
                "role": role, "work_base": str(root), "warm": []}
        with open(root / forkserver.LOG, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-s", "-P", "-m", "evaluators.forkserver", json.dumps(spec)],
                cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True)
        self.frames = wire.FrameReader(self.proc.stdout.fileno())
        self.log = root / forkserver.LOG

    def job(self, code: str, **fields: Any) -> EvalJob:
        """Returns a job for this server's problem."""
        return EvalJob(code=code, problem_dir=str(self.problem), evaluator_file="evaluator.py",
                       entry=self.entry, **{"timeout_s": 10, **fields})

    def line(self, timeout_s: float = 30) -> dict[str, Any]:
        """Returns the next frame the server writes on its control pipe, decoded."""
        try:
            return self.frames.next(time.monotonic() + timeout_s)
        except EOFError:
            raise AssertionError(f"the fork server ended: {self.log.read_text()[-2000:]}") from None

    def send(self, nonce: int, job: dict[str, Any]) -> None:
        """Writes one request for job (its fields; anything, to see how the server takes it)."""
        self.proc.stdin.write(wire.request(nonce, json.dumps(job).encode(),
                                           float(job.get("timeout_s", 10)), 64 * 1024, 1 << 20))
        self.proc.stdin.flush()

    def ask(self, code: str, **fields: Any) -> dict[str, Any]:
        """Returns the server's answer to one candidate."""
        nonce = secrets.randbits(64)
        self.send(nonce, self.job(code, **fields).to_dict())
        answer = self.line()
        while set(answer) == {"spare"}:  # the server's next child, named after each answer
            answer = self.line()
        assert answer["nonce"] == nonce
        return answer

    def close(self) -> int:
        """Closes stdin, which ends the server; returns its exit status."""
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc.stdout.close()


@pytest.fixture
def problem(tmp_path: Path) -> Path:
    """Returns a problem folder whose evaluator reports who imported it and who scored."""
    folder = tmp_path / "problem"
    folder.mkdir()
    (folder / "evaluator.py").write_text(EVALUATOR)
    return folder


@pytest.fixture
def server(tmp_path: Path, problem: Path) -> Iterator[Server]:
    """Yields a started fork server that has said it is ready."""
    started = Server(tmp_path / "server", problem)
    try:
        assert started.line()["ready"] is True
        yield started
    finally:
        started.close()


def result_of(answer: dict[str, Any]) -> EvalResult:
    """Returns the EvalResult in an answer."""
    return EvalResult.from_dict(answer["result"])


def test_each_answer_carries_the_candidates_result_and_how_its_process_ended(
        server: Server) -> None:
    answer = server.ask("print('from the candidate')\n" + ONE, seed=5)
    assert answer["returncode"] == 0 and answer["signal"] is None and not answer["timed_out"]
    assert "from the candidate" in answer["stdout"] and answer["duration_s"] > 0
    result = result_of(answer)
    assert result.ok and result.score == 1.0 and result.metrics["seed"] == 5.0
    assert "evaluator imported" in server.log.read_text()  # the server's own output: its log


def test_each_answer_says_what_each_step_of_the_candidate_cost(server: Server) -> None:
    slow = "import time\n\ndef solve():\n    time.sleep(0.3)\n    return 1.0\n"
    steps = server.ask(slow)["steps"]
    assert set(steps) >= {"clean", "start", "setup", "run", "result", "sweep", "child_cpu",
                          "child_faults", "job_faults"}
    assert all(value >= 0 for value in steps.values())
    assert steps["run"] >= 300 > steps["start"] + steps["setup"]  # the sleep is in "run"
    assert 0 < steps["job_faults"] < steps["child_faults"]  # the rest: while it rehearsed


def test_each_candidate_runs_in_a_spare_forked_after_the_last_one_was_gone(
        server: Server) -> None:
    first = result_of(server.ask(ONE))
    spare = server.line()["spare"]  # named once the answer is out
    assert spare != first.metrics["scored_by"]
    assert Path(f"/proc/{spare}").exists()  # waiting for the next job
    assert result_of(server.ask(ONE)).metrics["scored_by"] == float(spare)


def test_a_candidate_inherits_no_module_whose_fork_handlers_would_run_in_its_process(
        server: Server) -> None:
    probe = ("import sys\n\ndef solve():\n"
             "    return float(not {'threading', 'random', 'subprocess'} & set(sys.modules))\n")
    assert result_of(server.ask(probe)).score == 1.0  # each would cost ~100 page copies


def test_a_spare_rehearses_without_running_the_problems_evaluator(
        tmp_path: Path, problem: Path) -> None:
    calls = tmp_path / "calls"
    (problem / "evaluator.py").write_text(EVALUATOR + textwrap.dedent(f"""
        scored = evaluate

        def evaluate(program_path):
            with open({str(calls)!r}, "a") as log:
                log.write(open(program_path).read().splitlines()[-1] + "\\n")
            return scored(program_path)
    """))
    counting = Server(tmp_path / "server", problem)
    try:
        assert counting.line()["ready"] is True
        for k in range(3):
            assert result_of(counting.ask(f"def solve():\n    return {k}.0\n")).score == k
        counting.line()  # the next spare is forked and has had time to rehearse
        time.sleep(0.5)
    finally:
        counting.close()
    assert calls.read_text().splitlines() == [f"    return {k}.0" for k in range(3)]


def test_a_produce_spare_rehearses_with_a_program_of_its_own_and_leaves_no_trace_of_it(
        tmp_path: Path, problem: Path) -> None:
    producer = Server(tmp_path / "server", problem, role="produce")
    probe = ("import os, sys\n\ndef construct():\n"
             "    return [os.path.basename(p) for p in sys.path[:2]] + [os.getcwd()]\n")
    try:
        assert producer.line()["ready"] is True
        for k in (1, 2):
            answer = producer.ask(probe)
            assert result_of(answer).ok and answer["data_error"] == ""
            first, second, cwd = json.loads(answer["data"])
            assert first == f"c{k}" and second != "c0" and cwd.endswith(f"c{k}")
    finally:
        producer.close()


def test_after_an_idle_wait_the_server_polls_its_candidate_only_briefly(server: Server) -> None:
    def cpu_s() -> float:
        fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    server.ask(ONE)
    time.sleep(0.1)  # idle: the next request finds the server waiting, so it polls first
    before = cpu_s()
    slow = "import time\n\ndef solve():\n    time.sleep(0.6)\n    return 1.0\n"
    assert result_of(server.ask(slow)).score == 1.0
    assert cpu_s() - before < 0.2  # not the 0.6 s the candidate slept


def test_a_spare_that_dies_before_its_job_is_replaced(server: Server) -> None:
    server.ask(ONE)
    spare = server.line()["spare"]
    os.kill(spare, signal.SIGKILL)
    deadline = time.monotonic() + 10  # dead (a zombie of the server's) before the next job
    while "\nState:\tZ" not in Path(f"/proc/{spare}/status").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert result_of(server.ask(ONE)).score == 1.0
    assert server.line()["spare"] > 0


def test_a_result_the_candidate_forges_carries_no_step_marks(server: Server) -> None:
    forged = ("import os\n\ndef solve():\n    os.write(3, b'{\"status\": \"ok\"}')\n"
              "    os._exit(0)\n")
    answer = server.ask(forged)
    assert answer["result"] == {"status": "ok"}  # taken as before: the candidate's own process
    assert "run" not in answer["steps"] and "sweep" in answer["steps"]


def test_a_candidate_that_closes_the_result_pipe_is_waited_for_not_taken_as_done(
        server: Server) -> None:
    closer = ("import os, time\n\ndef solve():\n    os.close(3)\n    time.sleep(0.5)\n"
              "    return 1.0\n")
    answer = server.ask(closer)
    assert answer["duration_s"] >= 0.5  # the end of the pipe was not the harness's
    assert answer["result"] is None and answer["returncode"] == 0


def test_a_result_is_answered_with_the_usage_the_child_reported_and_its_process_reaped_after(
        server: Server) -> None:
    first = server.ask(ONE)
    assert first["returncode"] == 0 and first["steps"]["child_faults"] > 0
    scored_by = int(result_of(first).metrics["scored_by"])
    server.line()  # the next spare is named once the last candidate is reaped
    assert not Path(f"/proc/{scored_by}").exists()


def test_the_evaluator_is_imported_once_and_each_candidate_runs_in_its_own_fork(
        server: Server) -> None:
    results = [result_of(server.ask(f"def solve():\n    return {k}.0\n")) for k in range(3)]
    assert [r.score for r in results] == [0.0, 1.0, 2.0]
    assert {r.metrics["imported_by"] for r in results} == {float(server.proc.pid)}
    assert {r.metrics["imports"] for r in results} == {1.0}
    scored_by = {r.metrics["scored_by"] for r in results}
    assert len(scored_by) == 3 and float(server.proc.pid) not in scored_by


def test_a_candidate_that_kills_its_fork_leaves_the_server_serving(server: Server) -> None:
    killer = "import os, signal\n\ndef solve():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    answer = server.ask(killer)
    assert answer["result"] is None and answer["signal"] == "SIGKILL" and not answer["timed_out"]
    assert result_of(server.ask(ONE)).score == 1.0


def test_a_candidate_that_hangs_is_killed_at_its_time_limit_and_the_next_one_runs(
        server: Server) -> None:
    started = time.monotonic()
    answer = server.ask("def solve():\n    while True:\n        pass\n", timeout_s=1)
    assert answer["timed_out"] and answer["result"] is None
    assert time.monotonic() - started < 8
    assert result_of(server.ask(ONE)).score == 1.0


def test_a_process_a_candidate_leaves_running_is_killed_before_the_answer(
        server: Server) -> None:
    tag = f"evoforge-forkserver-test-{uuid.uuid4().hex}"
    daemon = textwrap.dedent(f"""
        import subprocess, sys

        def solve():
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{tag}"],
                             start_new_session=True)
            return 3.0
    """)
    assert result_of(server.ask(daemon)).score == 3.0
    left = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == ""


def test_processes_a_candidate_s_thread_keeps_starting_after_its_result_are_all_gone_next(
        server: Server) -> None:
    tag = f"evoforge-forkserver-test-{uuid.uuid4().hex}"
    spawner = textwrap.dedent(f"""
        import subprocess, sys, threading

        def spawn():
            while True:
                subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{tag}"],
                                 start_new_session=True)

        def solve():
            threading.Thread(target=spawn, daemon=True).start()
            return 4.0
    """)
    assert result_of(server.ask(spawner)).score == 4.0
    assert result_of(server.ask(ONE)).score == 1.0
    left = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == ""


def test_a_request_the_server_cannot_handle_is_answered_as_a_crash_and_serving_goes_on(
        server: Server) -> None:
    server.send(7, {"code": ONE})  # no problem_dir, no evaluator_file
    answer = server.line()
    assert answer["nonce"] == 7
    failure = result_of(answer)
    assert failure.error_kind is FailureKind.CRASH
    assert failure.error.startswith("the pre-forked evaluator failed: TypeError(")
    assert result_of(server.ask(ONE)).score == 1.0


def test_bytes_that_are_not_a_request_end_the_server_with_the_reason_in_its_log(
        server: Server) -> None:
    server.proc.stdin.write(b'{"nonce": 1, "job": {}}\n'.ljust(wire.REQUEST.size))
    server.proc.stdin.flush()
    assert server.proc.wait(timeout=30) == 0
    assert "a request that does not start as one" in server.log.read_text()


def test_an_evaluator_that_fails_to_import_fails_every_request_with_the_reason(
        tmp_path: Path, problem: Path) -> None:
    (problem / "evaluator.py").write_text("import no_such_module_for_the_fork_server\n")
    broken = Server(tmp_path / "server", problem)
    try:
        assert broken.line() == {"ready": True, "spare": None}  # no evaluator: nothing to fork
        for _ in range(2):
            failure = result_of(broken.ask(ONE))
            assert failure.error_kind is FailureKind.EVALUATOR
            assert "no_such_module_for_the_fork_server" in failure.error
    finally:
        assert broken.close() == 0


def test_the_server_exits_cleanly_when_its_requests_end(tmp_path: Path, problem: Path) -> None:
    started = Server(tmp_path / "server", problem)
    assert started.line()["ready"] is True
    assert result_of(started.ask(ONE)).ok
    assert started.close() == 0


def test_killing_the_descendants_reaches_adopted_orphans() -> None:
    assert layers.become_subreaper()
    pid = os.fork()
    if pid == 0:  # a grandchild that outlives its parent: adopted by the subreaper (us)
        if os.fork() == 0:
            time.sleep(60)
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.1)
    assert leftovers.kill_descendants() >= 1
    assert leftovers.children() == []
