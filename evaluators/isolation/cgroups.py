"""A pids cgroup per evaluation: the kernel refuses any fork or thread past its pids.max.

`find()` says where evaluation cgroups go: $EVOFORGE_PIDS_CGROUP (a folder an administrator
delegated to this user), else this process's own cgroup in the cgroup v2 hierarchy when it offers
the pids controller, else its own cgroup in the v1 pids hierarchy. `probe()` checks once that a
child can be made there and that a process inside is refused forks past pids.max. `Cgroup.create`
makes one per evaluation (named after this process, so a crashed owner's are found and removed);
sandbox.spawn moves the evaluation's first process into it before anything of it runs, and
`remove()` kills whatever is still inside, then removes the folder. The counts are hierarchical: a
cgroup made inside an evaluation's cgroup cannot raise its limit.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from evaluators.isolation import sandbox
from evaluators.isolation.limits import Limits

ENV_VAR = "EVOFORGE_PIDS_CGROUP"
PREFIX = "evoforge-"
_NAMES = itertools.count(1)
_PROBE_LIMIT = 3
_FORKS = "i=0; while [ $i -lt 8 ]; do sleep 5 >/dev/null & i=$((i+1)); done 2>/dev/null"


@dataclass(frozen=True)
class Hierarchy:
    """A cgroup evoforge may make evaluation cgroups in, and which cgroup version it is."""

    parent: Path
    version: int


def find() -> tuple[Hierarchy | None, str]:
    """Returns (where evaluation cgroups go, how it was found) or (None, why not and the fix)."""
    delegated = os.environ.get(ENV_VAR, "").strip()
    if delegated:
        path = Path(delegated)
        if not (path / "cgroup.procs").is_file():
            return None, f"{ENV_VAR}={delegated}: not a cgroup folder; name a mounted cgroup"
        version = 2 if (path / "cgroup.controllers").is_file() else 1
        return _usable_parent(path, version, f"{ENV_VAR}={delegated}")
    own = _own_cgroups()
    mounts = _cgroup_mounts()
    notes = []
    if "" in own and "cgroup2" in mounts:  # the unified hierarchy
        root, mountpoint = mounts["cgroup2"]
        parent = _inside(mountpoint, root, own[""])
        controllers = _read(parent / "cgroup.controllers").split()
        if "pids" in controllers:
            return _usable_parent(parent, 2, "cgroup v2")
        notes.append(f"cgroup v2 at {parent} offers no pids controller")
    if "pids" in own and "pids" in mounts:
        root, mountpoint = mounts["pids"]
        return _usable_parent(_inside(mountpoint, root, own["pids"]), 1, "cgroup v1 pids")
    notes.append("no cgroup v1 pids hierarchy is mounted")
    return None, "; ".join(notes) + f" (an administrator can delegate one: {ENV_VAR})"


def _usable_parent(parent: Path, version: int, label: str) -> tuple[Hierarchy | None, str]:
    if not os.access(parent, os.W_OK):
        return None, (f"{label}: {parent} is not writable by uid {os.geteuid()}; run as root, or "
                      f"have an administrator delegate a subtree (mkdir + chown it to this user) "
                      f"and set {ENV_VAR} to it")
    if version == 2 and "pids" not in _read(parent / "cgroup.subtree_control").split():
        try:
            (parent / "cgroup.subtree_control").write_text("+pids")
        except OSError as exc:
            return None, (f"{label}: cannot enable pids for child cgroups of {parent} "
                          f"({exc.strerror}; a cgroup with processes cannot); set {ENV_VAR} "
                          "to an empty delegated cgroup with pids in its cgroup.subtree_control")
    return Hierarchy(parent, version), f"{label} at {parent}"


def probe(where: Hierarchy) -> tuple[bool, str]:
    """Returns (usable, reason): a child cgroup holds a shell that forks past a small pids.max."""
    sweep_stale(where)
    try:
        group = Cgroup.create(where, _PROBE_LIMIT)
    except OSError as exc:
        return False, f"making a cgroup in {where.parent} failed: {exc.strerror or exc}"
    try:
        proc = sandbox.spawn([sandbox.SH, "-c", _FORKS], cwd="/", limits=Limits(),
                             stderr=subprocess.DEVNULL, cgroup=group.path)
        proc.communicate(timeout=10)
        refused = group.refused()
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"running a process in {group.path} failed: {exc}"
    finally:
        group.remove()
    if not refused:
        return False, f"a process in {group.path} was not refused forks past pids.max"
    return True, (f"a cgroup per evaluation in {where.parent} (cgroup v{where.version}); "
                  "pids.max bounds its processes and threads")


class Cgroup:
    """One evaluation's pids cgroup."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @classmethod
    def create(cls, where: Hierarchy, limit: int) -> Cgroup:
        """Returns a new cgroup under where with pids.max = limit; raises OSError."""
        path = where.parent / f"{PREFIX}{os.getpid()}-{next(_NAMES)}"
        path.mkdir()
        try:
            (path / "pids.max").write_text(str(int(limit)))
        except OSError:
            path.rmdir()
            raise
        return cls(path, where.version)

    def members(self) -> list[int]:
        """Returns the pids of the live processes inside."""
        return [int(p) for p in _read(self.path / "cgroup.procs").split()]

    def peak(self) -> int | None:
        """Returns the most processes and threads inside at once (None: kernel keeps no peak)."""
        text = _read(self.path / "pids.peak").strip()
        return int(text) if text.isdigit() else None

    def refused(self) -> int:
        """Returns how many forks the limit refused (pids.events "max")."""
        for line in _read(self.path / "pids.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "max" and value.strip().isdigit():
                return int(value)
        return 0

    def remove(self, timeout_s: float = 5.0) -> bool:
        """Kills every process inside, reaps those this process adopted (as subreaper), and
        removes the cgroup; returns False if it stays busy."""
        deadline, killed, removed = time.monotonic() + timeout_s, set(), False
        while not removed:
            if self.version == 2:
                with contextlib.suppress(OSError):
                    (self.path / "cgroup.kill").write_text("1")
            for pid in self.members():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
            try:
                self.path.rmdir()
                removed = True
            except FileNotFoundError:
                removed = True
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        until = time.monotonic() + 1.0
        for pid in killed:  # dead once the cgroup is gone; ours become zombies to reap
            _reap(pid, until)
        return removed


def sweep_stale(where: Hierarchy) -> int:
    """Removes the evaluation cgroups of processes that no longer exist; returns how many."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(where.parent):
            owner = entry.name.removeprefix(PREFIX).split("-", 1)[0]
            if entry.name.startswith(PREFIX) and owner.isdigit() and not _alive(int(owner)):
                removed += Cgroup(Path(entry.path), where.version).remove()
    return removed


def _reap(pid: int, until: float) -> None:
    """Reaps pid if it is (or is about to be) a zombie child of this process."""
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid or time.monotonic() > until:
                return
        except ChildProcessError:  # not our child (its parent, also inside, reaped it)
            return
        time.sleep(0.002)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _own_cgroups() -> dict[str, str]:
    """Returns this process's cgroup path per v1 controller ("" for the v2 hierarchy)."""
    found = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            found[name] = path
    return found


def _cgroup_mounts() -> dict[str, tuple[str, Path]]:
    """Returns (root inside the hierarchy, mount point) of "cgroup2" and of each v1 controller."""
    found: dict[str, tuple[str, Path]] = {}
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point = fields[3], Path(fields[4].replace("\\040", " "))
        if tail[0] == "cgroup2":
            found.setdefault("cgroup2", (root, point))
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                found.setdefault(option, (root, point))
    return found


def _inside(mountpoint: Path, root: str, own: str) -> Path:
    """Returns the folder of cgroup path own, in a hierarchy mounted at mountpoint from root."""
    relative = os.path.relpath(own, root) if own.startswith(root) else own.lstrip("/")
    return mountpoint if relative in (".", "") else mountpoint / relative


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
