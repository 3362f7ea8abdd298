"""Fixtures of the evaluator tests: a throwaway unprivileged user, private and open problem folders,
the layer decision read again around a test."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from evaluators.isolation import layers, uids

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "problems" / "good"


@dataclass
class User:
    """An unprivileged user made for one test module: name, uid and a 0700 folder it owns."""

    name: str
    uid: int
    home: Path

    def start(self, argv: list[str]) -> subprocess.Popen:
        """Returns argv started as this user (a child of this process, so kill() reaches it)."""
        gid = pwd.getpwuid(self.uid).pw_gid
        return subprocess.Popen(argv, user=self.uid, group=gid, extra_groups=[],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def processes(self) -> list[int]:
        """Returns the pids of this user's live processes."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == self.uid and _state(entry) != "Z":
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found


def _state(proc: Path) -> str:
    return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture(scope="module")
def unprivileged_user() -> Iterator[User]:
    """Yields a new user (useradd) that can run this checkout's venv; removes it afterwards."""
    if os.geteuid() != 0:
        pytest.skip("making a throwaway user needs root")
    tools = {t: shutil.which(t) for t in ("useradd", "userdel", "runuser")}
    if not all(tools.values()):
        pytest.skip(f"needs useradd, userdel and runuser: {tools}")
    name = f"evoforge-t{uuid.uuid4().hex[:8]}"
    subprocess.run([tools["useradd"], "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "--user-group", name], check=True, capture_output=True)
    uid = pwd.getpwnam(name).pw_uid
    home = Path(tempfile.mkdtemp(prefix="evoforge-user-"))  # mode 0700, like mktemp -d
    os.chown(home, uid, pwd.getpwnam(name).pw_gid)
    user = User(name, uid, home)
    try:
        why = uids.interpreter_problem(sys.executable, uid)
        if why:
            pytest.skip(f"the test interpreter is out of reach of other users: {why}")
        yield user
    finally:
        _remove(user, tools["userdel"])


def _remove(user: User, userdel: str) -> None:
    """Kills what this module left running as user, reaps what this process adopted of it, and
    deletes the user (userdel refuses while a process of it still exists)."""
    for _ in range(50):
        left = user.processes()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in left:  # those this (subreaper) process adopted would stay zombies
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        done = subprocess.run([userdel, user.name], check=False, capture_output=True, text=True)
        if done.returncode == 0:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"userdel {user.name} failed: {done.stderr.strip()}")
    shutil.rmtree(user.home, ignore_errors=True)


def private_problem(owner: int = 0, source: Path = GOOD) -> Path:
    """Returns a copy of a problem inside a new 0700 folder (what mktemp -d makes) owned by owner;
    the caller removes its parent."""
    parent = Path(tempfile.mkdtemp(prefix="evoforge-private-"))
    problem = parent / source.name
    shutil.copytree(source, problem)
    for path in (parent, problem, *problem.rglob("*")):
        os.chown(path, owner, owner if owner == 0 else pwd.getpwuid(owner).pw_gid)
    assert parent.stat().st_mode & 0o777 == 0o700
    return problem


@contextmanager
def open_problem(evaluator: str) -> Iterator[Path]:
    """Yields a new problem folder that other users (slot uids) can read, holding evaluator.py
    with the text evaluator; removes it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="evoforge-open-problem-"))
    root.chmod(0o755)
    (root / "evaluator.py").write_text(evaluator)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def layer_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Yields monkeypatch; the layer decision is read again before and after the test."""
    layers.reset()
    yield monkeypatch
    monkeypatch.undo()
    layers.reset()
