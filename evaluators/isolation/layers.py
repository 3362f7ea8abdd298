"""Isolation layers around a sandboxed evaluation: bubblewrap, seccomp, and process hygiene.

Layers are on by default where the machine allows them, decided once per process by
`available_layers()`. EVOFORGE_SANDBOX_LAYERS (comma-separated, e.g. "rlimits,bwrap") names the
layers to use; a layer left out is off. rlimits and the reaper are the base and always on. The uid
layer (evaluators/isolation/uids.py) runs each evaluation as its own unprivileged uid, so RLIMIT_NPROC holds
and the program cannot signal or read host processes; bwrap then runs unprivileged under it.
`isolation(...)` gives the argv wrappers and the file descriptors for one evaluation. The bwrap
command line and seccomp filter are built in evaluators/isolation/bwrap.py; `sweep(run_id)` (evaluators/
reaper.py, re-exported here) kills and reaps what an evaluation left behind.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from evaluators.isolation import docker_backend, sandbox, uids
from evaluators.isolation.bwrap import BWRAP, bwrap_args, interpreter_dirs, seccomp_bpf, seccomp_fd
from evaluators.isolation.bwrap import base_args as bwrap_base_args
from evaluators.isolation.reaper import RUN_VAR, become_subreaper, sweep

__all__ = [
    "RUN_VAR",
    "Isolation",
    "LayerStatus",
    "active_names",
    "available_layers",
    "become_subreaper",
    "bwrap_args",
    "isolation",
    "reset",
    "seccomp_bpf",
    "sweep",
    "unwrap_status",
]

log = logging.getLogger("evoforge.sandbox")
ENV_VAR = "EVOFORGE_SANDBOX_LAYERS"
SWITCHABLE = ("uid", "bwrap", "seccomp")
OPT_IN = ("docker",)  # on only when named: the image is a choice
BASE = ("rlimits", "reaper")


@dataclass(frozen=True)
class LayerStatus:
    """Whether one isolation layer is active in this process, and why (not)."""

    name: str
    active: bool
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {'active' if self.active else 'missing'} — {self.reason}"


@dataclass
class Isolation:
    """What sandbox.run needs for one evaluation: argv wrappers and the fds they refer to."""

    wrap: list[sandbox.Wrapper] = field(default_factory=list)
    pass_fds: tuple[int, ...] = ()
    active: tuple[str, ...] = ()
    user: tuple[int, int] | None = None  # (uid, gid) of the slot uid, when the uid layer is on
    mounts: tuple[tuple[str, ...], tuple[str, ...], str] | None = None  # docker: ro, rw, python

    def run(self, argv: list[str], *, cwd: str, limits: sandbox.Limits,
            env: dict[str, str] | None = None) -> sandbox.SandboxOutcome:
        """Returns the outcome of argv under these layers (a container when docker is on)."""
        if self.mounts is not None:
            readable, writable, python = self.mounts
            return docker_backend.run_container(argv, cwd=cwd, limits=limits, env=env,
                                                user=self.user, readable=readable,
                                                writable=writable, python=python)
        return sandbox.run(argv, cwd=cwd, limits=limits, env=env, wrap=self.wrap,
                           pass_fds=self.pass_fds, user=self.user)


_DECISION: tuple[LayerStatus, ...] | None = None
_DECISION_LOCK = threading.Lock()


def available_layers() -> list[LayerStatus]:
    """Returns the status of every layer, decided (and logged) once per process."""
    return list(_decided())


def active_names() -> tuple[str, ...]:
    """Returns the names of the active layers."""
    return tuple(s.name for s in _decided() if s.active)


def reset() -> None:
    """Forgets the decision, so the next call reads EVOFORGE_SANDBOX_LAYERS again (for tests)."""
    global _DECISION
    with _DECISION_LOCK:
        _DECISION = None


def _decided() -> tuple[LayerStatus, ...]:
    global _DECISION
    with _DECISION_LOCK:
        if _DECISION is None:
            _DECISION = _decide()
        return _DECISION


def _decide() -> tuple[LayerStatus, ...]:
    wanted = _wanted(os.environ.get(ENV_VAR))
    statuses = [LayerStatus("rlimits", True, "prlimit" if sandbox.PRLIMIT else "setrlimit"),
                _reaper_status()]
    uid = _off("uid") if "uid" not in wanted else LayerStatus("uid", *uids.usable())
    statuses.append(uid)
    docker = _docker_status("docker" in wanted)
    if docker.active:  # the container is the isolation: bwrap and seccomp stand aside
        wanted -= {"bwrap", "seccomp"}
    bwrap = _off("bwrap") if "bwrap" not in wanted else _bwrap_status(uid.active)
    if "bwrap" in wanted and uid.active and not bwrap.active:
        as_root = _bwrap_status(False)  # no unprivileged bwrap here: keep bwrap, drop the uid
        if as_root.active:
            statuses[-1] = LayerStatus("uid", False, f"off because bwrap cannot run unprivileged "
                                       f"here ({bwrap.reason}); bwrap runs as root instead")
            bwrap = as_root
    if docker.active:
        bwrap = LayerStatus("bwrap", False, "not used: the docker layer isolates evaluations")
    statuses.append(bwrap)
    if docker.active:
        statuses.append(LayerStatus("seccomp", False, "not used: docker applies its default "
                                    "seccomp profile"))
    elif "seccomp" not in wanted:
        statuses.append(_off("seccomp"))
    elif not bwrap.active:
        statuses.append(LayerStatus("seccomp", False, "needs bwrap (the filter goes in by "
                                    "bwrap --seccomp)"))
    else:
        statuses.append(_seccomp_status())
    statuses.append(docker)
    for status in statuses:  # docker is optional: its absence is no warning
        quiet = status.active or status.name == "docker"
        (log.info if quiet else log.warning)("sandbox layer %s", status)
    return tuple(statuses)


def _wanted(spec: str | None) -> set[str]:
    """Returns the switchable layers asked for; raises ValueError naming unknown ones."""
    if spec is None or not spec.strip():
        return set(SWITCHABLE)
    names = {n.strip() for n in spec.split(",") if n.strip()}
    unknown = names - set(SWITCHABLE) - set(BASE) - set(OPT_IN)
    if unknown:
        raise ValueError(f"{ENV_VAR}={spec!r}: unknown layer(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(BASE + SWITCHABLE + OPT_IN)}")
    return names & set(SWITCHABLE + OPT_IN)


def _off(name: str) -> LayerStatus:
    return LayerStatus(name, False, f"turned off by {ENV_VAR}")


def _reaper_status() -> LayerStatus:
    if become_subreaper():
        return LayerStatus("reaper", True, "child subreaper; strays of each evaluation are killed")
    return LayerStatus("reaper", False, "prctl(PR_SET_CHILD_SUBREAPER) failed; strays are still "
                       "killed by the sweep but orphans go to init")


def _bwrap_status(as_slot_uid: bool) -> LayerStatus:
    if BWRAP is None:
        return LayerStatus("bwrap", False, "bwrap not found; install the Debian package bubblewrap")
    binds = [a for d in interpreter_dirs(sys.executable) for a in ("--ro-bind", d, d)]
    probe = [BWRAP, *bwrap_base_args(), *binds, "--", sys.executable, "-c", "import evaluators"]
    lease = uids.acquire() if as_slot_uid else None
    ids = {"user": lease.uid, "group": lease.gid, "extra_groups": [], "cwd": "/"} if lease else {}
    try:
        done = subprocess.run(probe, capture_output=True, timeout=20, check=False, **ids)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return LayerStatus("bwrap", False, f"probe failed: {exc}")
    finally:
        if lease:
            lease.release()
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        hint = (f" (it ran as the slot uid {lease.uid}: EVOFORGE_SANDBOX_LAYERS=bwrap,seccomp "
                "runs bwrap as root instead)") if lease else ""
        return LayerStatus("bwrap", False, f"probe failed ({why[0]}){hint}; if it names "
                           "namespaces, user namespaces are disabled or not allowed here")
    who = "unprivileged, as the slot uid" if lease else "as this user"
    return LayerStatus("bwrap", True, f"{BWRAP} ({who}): namespaces unshared, read-only system, "
                       "private /tmp, empty environment")


def _seccomp_status() -> LayerStatus:
    try:
        bpf = seccomp_bpf()
    except ImportError as exc:
        return LayerStatus("seccomp", False, f"pyseccomp not installed ({exc}); pip install "
                           "pyseccomp (needs libseccomp2)")
    except (OSError, RuntimeError, ValueError) as exc:
        return LayerStatus("seccomp", False, f"building the filter failed: {exc}")
    return LayerStatus("seccomp", True, f"{len(bpf)} bytes of BPF: non-unix sockets, ptrace, "
                       "mount, bpf, kernel modules, namespaces ... denied with EPERM")


def _docker_status(wanted: bool) -> LayerStatus:
    available, reason = docker_backend.detect()
    if available and not wanted:
        return LayerStatus("docker", False, f"{reason}; opt in with {ENV_VAR}=uid,docker")
    return LayerStatus("docker", available and wanted, reason)


# ---------------------------------------------------------------- bubblewrap + seccomp

@contextlib.contextmanager
def isolation(*, cwd: str, writable: Sequence[str] = (), readable: Sequence[str] = (),
              env: dict[str, str] | None = None, python: str = sys.executable,
              limits: sandbox.Limits | None = None) -> Iterator[Isolation]:
    """Yields the wrappers and fds for one evaluation under the active layers; closes the fds."""
    names = active_names()
    if "reaper" in names:
        become_subreaper()  # again in a forked worker (a Celery pool process): not inherited
    lease = _slot_uid(cwd, writable, readable) if "uid" in names else None
    if lease is None:
        names = tuple(n for n in names if n != "uid")
    try:
        yield from _wrapped(names, lease, cwd=cwd, writable=writable, readable=readable, env=env,
                            python=python, limits=limits)
    finally:
        if lease is not None:
            lease.release()


_WARNED: set[str] = set()


def _slot_uid(cwd: str, writable: Sequence[str], readable: Sequence[str]) -> uids.Lease | None:
    """Returns a uid lease with cwd and the writable folders handed to it, or None (logged) when
    a folder the evaluation reads cannot be reached by an unprivileged uid."""
    try:
        lease = uids.acquire()
    except (RuntimeError, OSError) as exc:  # every uid busy: run, but say so
        log.warning("sandbox layer uid skipped for one evaluation: %s", exc)
        return None
    for path in readable:
        why = uids.unreachable(path, lease.uid)
        if why:
            lease.release()
            if path not in _WARNED:
                _WARNED.add(path)
                log.warning("sandbox layer uid skipped for evaluations reading %s: %s; make the "
                            "folder readable by other users (chmod o+rx) to get it back", path, why)
            return None
    for path in dict.fromkeys((*writable, cwd)):
        os.chown(path, lease.uid, lease.gid)
    return lease


def _wrapped(names: tuple[str, ...], lease: uids.Lease | None, *, cwd: str,
             writable: Sequence[str], readable: Sequence[str], env: dict[str, str] | None,
             python: str, limits: sandbox.Limits | None) -> Iterator[Isolation]:
    user = lease.user if lease else None
    if "docker" in names:
        yield Isolation(active=names, user=user, mounts=(tuple(readable), tuple(writable), python))
        return
    if "bwrap" not in names:
        yield Isolation(active=names, user=user)
        return
    filter_fd = seccomp_fd() if "seccomp" in names else None
    try:
        argv = bwrap_args(cwd=cwd, writable=writable, readable=readable, python=python,
                          env=sandbox.minimal_env(cwd, env), limits=limits or sandbox.Limits())
        if filter_fd is not None:
            argv += ["--seccomp", str(filter_fd)]
        wrapper = functools.partial(_prefix, [BWRAP, *argv, "--"])
        yield Isolation(wrap=[wrapper], active=names, user=user,
                        pass_fds=() if filter_fd is None else (filter_fd,))
    finally:
        if filter_fd is not None:
            os.close(filter_fd)


def unwrap_status(outcome: sandbox.SandboxOutcome, iso: Isolation) -> sandbox.SandboxOutcome:
    """Returns outcome with bwrap's exit code 128+N (its child killed by signal N) as signal N."""
    code = outcome.returncode
    if iso.wrap and "bwrap" in iso.active and code is not None and 128 < code < 128 + 65:
        with contextlib.suppress(ValueError):
            outcome.signal = signal.Signals(code - 128).name
            outcome.returncode = -(code - 128)
    return outcome


def _prefix(prefix: list[str], argv: list[str], limits: sandbox.Limits) -> list[str]:
    return [*prefix, *argv]
