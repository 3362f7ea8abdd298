"""Dedicated unprivileged uids for sandboxed evaluations, one per running evaluation (worker slot).

Root ignores RLIMIT_NPROC, so a fork bomb is only bounded when the program runs as an ordinary uid
that nothing else uses. The uids come from EVOFORGE_SANDBOX_UIDS (default 61000-61255); they need
no /etc/passwd entries (gid = uid, no supplementary groups). A lease is an flock on a file per uid,
so threads and processes on this machine never share a uid, and a dead owner's lease frees itself.
Every process of a uid is killed when its lease is taken and when it is given back.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from evaluators.isolation import sandbox

RANGE_VAR = "EVOFORGE_SANDBOX_UIDS"
DEFAULT_RANGE = "61000-61255"
KILL = shutil.which("kill") or "/bin/kill"


@dataclass
class Lease:
    """One uid held for one sandboxed evaluation (or one pre-forked evaluator); gid = uid."""

    uid: int
    fd: int

    @property
    def gid(self) -> int:
        """Returns the group id the sandbox runs with (the same number as the uid)."""
        return self.uid

    @property
    def user(self) -> tuple[int, int]:
        """Returns (uid, gid) for sandbox.run."""
        return self.uid, self.uid

    def release(self) -> None:
        """Kills every process of the uid, then gives the uid back (idempotent)."""
        if self.fd < 0:
            return
        kill_all(self.uid)
        os.close(self.fd)  # closing the only descriptor drops the flock
        self.fd = -1


def uid_range(spec: str | None = None) -> range:
    """Returns the configured uid range; raises ValueError naming the variable and the fix."""
    text = (spec if spec is not None else os.environ.get(RANGE_VAR, "")).strip() or DEFAULT_RANGE
    try:
        first, last = (int(part) for part in text.split("-", 1))
    except ValueError:
        raise ValueError(f"{RANGE_VAR}={text!r}: expected FIRST-LAST, "
                         f"e.g. {DEFAULT_RANGE}") from None
    if first < 1000 or last < first or last > 4_000_000_000:
        raise ValueError(f"{RANGE_VAR}={text!r}: use a range of unused ids from 1000 up with "
                         f"FIRST <= LAST, e.g. {DEFAULT_RANGE}")
    return range(first, last + 1)


def lock_dir() -> Path:
    """Returns the folder of lease files (root-only), creating it; refuses one someone else owns."""
    path = Path(tempfile.gettempdir()) / f"evoforge-uids-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{path}: not a private folder of uid {os.geteuid()}; remove it "
                           "(it holds the sandbox's uid leases)")
    return path


_ACCOUNTS: dict[int, bool] = {}
_ACCOUNTS_LOCK = threading.Lock()


def _has_account(uid: int) -> bool:
    with _ACCOUNTS_LOCK:
        if uid not in _ACCOUNTS:
            try:
                pwd.getpwuid(uid)
                _ACCOUNTS[uid] = True
            except KeyError:
                _ACCOUNTS[uid] = False
        return _ACCOUNTS[uid]


def acquire(ids: range | None = None) -> Lease:
    """Returns a lease on a free uid of the range (ids with a passwd entry are skipped)."""
    ids = ids if ids is not None else uid_range()
    folder = lock_dir()
    for uid in ids:
        if _has_account(uid):
            continue  # a real account: its processes are not ours to kill
        fd = os.open(folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        kill_all(uid)  # whatever a crashed earlier owner left behind
        return Lease(uid, fd)
    raise RuntimeError(f"all {len(ids)} sandbox uids of {RANGE_VAR} ({ids.start}-{ids.stop - 1}) "
                       "are in use; widen the range")


def kill_all(uid: int) -> None:
    """Sends SIGKILL to every process of uid: `kill -9 -1` run as that uid reaches exactly those."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([KILL, "-9", "-1"], user=uid, group=uid, extra_groups=[], check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd="/", env={}, timeout=10)


def unreachable(path: str | Path, uid: int, *, write: bool = False) -> str | None:
    """Returns why uid (gid = uid, no other groups) cannot reach path, else None."""
    target = Path(os.path.realpath(path))
    for part in [*reversed(target.parents), target]:
        try:
            info = part.stat()
        except OSError as exc:
            return f"{part}: {exc.strerror}"
        is_dir = stat.S_ISDIR(info.st_mode)
        need = 1 if is_dir else 0  # x to enter a folder
        if part == target:
            need |= 4 | (2 if write else 0)  # r (and w) on the target itself
        if info.st_uid == uid:
            have = info.st_mode >> 6 & 7
        elif info.st_gid == uid:
            have = info.st_mode >> 3 & 7
        else:
            have = info.st_mode & 7
        if have & need != need:
            verb = "write" if write and part == target else "read" if part == target else "enter"
            return (f"{part} is mode {stat.S_IMODE(info.st_mode):04o} (owner uid {info.st_uid}): "
                    f"uid {uid} cannot {verb} it")
    return None


def interpreter_problem(python: str, uid: int) -> str | None:
    """Returns why uid cannot run python with the evaluators package, with the fix; else None."""
    for path in (Path(python).absolute().parent, os.path.realpath(python), sandbox.PACKAGE_DIR):
        why = unreachable(path, uid)
        if why:
            return (f"{why}; the sandbox interpreter must be reachable by unprivileged uids: make "
                    f"the venv from /usr/bin/python3 in a world-readable folder (bash .ci/setup "
                    f"does), or chmod o+rx the folders on the way")
    try:
        probe = subprocess.run([python, "-s", "-P", "-c", "import evaluators.harness"],
                               user=uid, group=uid, extra_groups=[], cwd="/", env={},
                               capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"running {python} as uid {uid} failed: {exc}"
    if probe.returncode != 0:
        last = probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return (f"{python} -c 'import evaluators.harness' as uid {uid} failed ({last[0]}); make "
                "the interpreter, its venv and the evoforge source readable by other users")
    return None


def usable(python: str = sys.executable) -> tuple[bool, str]:
    """Returns (usable, reason) for the uid layer on this machine with this interpreter."""
    if os.geteuid() != 0:
        return False, (f"not running as root (uid {os.geteuid()}): there are no uids to hand "
                       "out, evaluations run as this user (bwrap's user namespace separates them "
                       "from this user's processes); run evoforge as root for slot uids, or leave "
                       "uid out of EVOFORGE_SANDBOX_LAYERS")
    try:
        ids = uid_range()
        lease = acquire(ids)
    except (ValueError, RuntimeError, OSError) as exc:
        return False, str(exc)
    try:
        why = interpreter_problem(python, lease.uid)
    finally:
        lease.release()
    if why:
        return False, why
    return True, (f"uids {ids.start}-{ids.stop - 1} ({RANGE_VAR}), one per running evaluation; "
                  "RLIMIT_NPROC bounds each one's processes")
