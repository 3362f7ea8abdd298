"""Real Celery worker processes for tests: start, find their pool processes, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

BROKERS = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
    "redis": "redis://127.0.0.1:6379/0",
}


@dataclass
class Worker:
    """A running `evoforge worker` process and the log it writes."""

    proc: subprocess.Popen
    log: Path
    queue: str

    def pool(self) -> list[int]:
        """Returns the pids of the worker's pool processes."""
        return children(self.proc.pid)

    def busy_pool(self) -> list[int]:
        """Returns the pool processes that are evaluating something (they have a child)."""
        return [pid for pid in self.pool() if children(pid)]

    def kill(self) -> None:
        """SIGKILLs the whole worker: main process and pool (as a machine crash would)."""
        tree = descendants(self.proc.pid)  # pool processes and the evaluations they run
        for pid in [*tree, self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        reap(tree)  # this test process is a subreaper: the orphans come to it

    def stop(self) -> None:
        """Stops the worker (warm shutdown, then kill)."""
        pool = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        reap(pool)


def reap(pids: list[int], timeout: float = 5.0) -> None:
    """Waits for pids that were re-parented to this (subreaper) test process, so none stays a
    zombie; pids that are not our children are skipped."""
    deadline = time.time() + timeout
    for pid in pids:
        while time.time() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            time.sleep(0.05)


def descendants(pid: int) -> list[int]:
    """Returns every process below pid."""
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def children(pid: int) -> list[int]:
    """Returns the pids whose parent is pid (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def new_queue() -> str:
    """Returns a queue name no other test uses (no cross-talk between tests)."""
    return f"test-{uuid.uuid4().hex[:10]}"


def start_worker(broker: str, queue: str, home: Path, concurrency: int = 2,
                 env: dict[str, str] | None = None, timeout: float = 60,
                 loglevel: str = "INFO", args: tuple[str, ...] = (),
                 stdout_apart: bool = False) -> Worker:
    """Starts `evoforge worker` on queue (with more options args) and waits until it is ready;
    its stdout goes to the log too unless stdout_apart (then to the log's .out file)."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"worker-{uuid.uuid4().hex[:6]}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker", "--queues", queue, "--concurrency",
         str(concurrency), "--broker", broker, "--loglevel", loglevel, *args],
        env={**os.environ, "EVOFORGE_HOME": str(home), **(env or {})},
        stdout=log.with_suffix(".out").open("w") if stdout_apart else log.open("w"),
        stderr=log.open("w") if stdout_apart else subprocess.STDOUT)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{log.read_text()}")
        if "evoforge worker" in log.read_text() and " ready" in log.read_text():
            return Worker(proc, log, queue)
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"worker not ready after {timeout} s:\n{log.read_text()}")
