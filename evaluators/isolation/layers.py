"""Isolation layers around one sandboxed evaluation: applied, or the evaluation refused; recorded.

Which layers this process can apply, and which the configuration asks for, is decided once in
evaluators/isolation/detect.py (re-exported here). `isolation(...)` applies them to one evaluation:
a slot uid (isolation/uids.py) reading a staged read-only copy of the problem folders
(isolation/staging.py), a pids cgroup (isolation/cgroups.py) and the other process limits
(isolation/pids.py), bubblewrap and its seccomp filter (isolation/bwrap.py) or a container. The
Isolation it yields says which layers the evaluation actually has (`applied`, e.g. "uid",
"pids:cgroup"). Under the strict policy (the default) an evaluation missing a layer the
configuration asks for is refused (Refused, naming the cause and the fix) before anything runs;
under "best-effort" it runs with what it has and says so. `sweep(run_id)` (isolation/reaper.py,
re-exported here) kills and reaps what an evaluation left behind.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evaluators.isolation import cgroups, docker_backend, pids, sandbox, staging, uids
from evaluators.isolation.bwrap import BWRAP, bwrap_args, seccomp_bpf, seccomp_fd
from evaluators.isolation.detect import (
    ENV_VAR,
    LayerStatus,
    active_names,
    available_layers,
    decided,
    required,
    status,
)
from evaluators.isolation.detect import reset as reset_decision
from evaluators.isolation.limits import Limits
from evaluators.isolation.reaper import RUN_VAR, become_subreaper, sweep

__all__ = [
    "BEST_EFFORT",
    "ENV_VAR",
    "RUN_VAR",
    "STRICT",
    "Isolation",
    "LayerStatus",
    "Refused",
    "active_names",
    "available_layers",
    "become_subreaper",
    "bwrap_args",
    "isolation",
    "required",
    "reset",
    "seccomp_bpf",
    "sweep",
    "unwrap_status",
]

log = logging.getLogger("evoforge.sandbox")
STRICT, BEST_EFFORT = "strict", "best-effort"  # evaluation.isolation; anything else is strict


class Refused(RuntimeError):
    """A layer the configuration asks for cannot be applied; the message says why and the fix."""


@dataclass
class Isolation:
    """One evaluation's layers: argv wrappers and their fds, its uid, cgroup, staged folders."""

    wrap: list[sandbox.Wrapper] = field(default_factory=list)
    pass_fds: tuple[int, ...] = ()
    active: tuple[str, ...] = ()
    user: tuple[int, int] | None = None  # (uid, gid) of the slot uid, when the uid layer is on
    mounts: tuple[tuple[str, ...], tuple[str, ...], str] | None = None  # docker: ro, rw, python
    applied: tuple[str, ...] = ()  # what this evaluation has, e.g. ("rlimits", "pids:cgroup", ...)
    cgroup: cgroups.Cgroup | None = None
    moved: dict[str, str] = field(default_factory=dict)  # a problem folder -> its staged copy

    def run(self, argv: list[str], *, cwd: str, limits: Limits,
            env: dict[str, str] | None = None) -> sandbox.SandboxOutcome:
        """Returns the outcome of argv under these layers (a container when docker is on)."""
        if self.mounts is not None:
            readable, writable, python = self.mounts
            return docker_backend.run_container(argv, cwd=cwd, limits=limits, env=env,
                                                user=self.user, readable=readable,
                                                writable=writable, python=python)
        return sandbox.run(argv, cwd=cwd, limits=limits, env=env, wrap=self.wrap,
                           pass_fds=self.pass_fds, user=self.user,
                           cgroup=self.cgroup.path if self.cgroup else None)


@contextlib.contextmanager
def isolation(*, cwd: str, writable: Sequence[str] = (), readable: Sequence[str] = (),
              env: dict[str, str] | None = None, python: str = sys.executable,
              limits: Limits | None = None, policy: str = STRICT) -> Iterator[Isolation]:
    """Yields the layers of one evaluation; raises Refused when a layer the configuration asks
    for cannot be applied and policy is not best-effort. Releases the uid and cgroup afterwards."""
    limits = limits or Limits()
    names = active_names()
    missing: dict[str, str] = {}
    if "reaper" in names and not become_subreaper():  # again in a forked worker: not inherited
        missing["reaper"] = "prctl(PR_SET_CHILD_SUBREAPER) failed in this worker process"
        names = tuple(n for n in names if n != "reaper")
    with contextlib.ExitStack() as stack:
        lease, moved = None, {}
        if "uid" in names:
            lease, moved, why = _slot_uid(cwd, writable, readable)
            if lease is None:
                missing["uid"], names = why, tuple(n for n in names if n != "uid")
            else:
                stack.callback(lease.release)
        limit = decided().pids
        userns = pids.USERNS in limit.mechanisms and "bwrap" in names and lease is None
        group = None
        if pids.CGROUP in limit.mechanisms and "docker" not in names and not (lease or userns):
            try:  # the fallback: costs a cgroup move per evaluation
                group = cgroups.Cgroup.create(limit.cgroup, limits.processes)
                stack.callback(group.remove)
            except OSError as exc:
                missing["pids"] = f"making its pids cgroup in {limit.cgroup.parent} failed: {exc}"
        applied = _applied(names, lease is not None, userns, group is not None)
        if not any(a.startswith("pids:") for a in applied) and lease is None and limit.mechanisms:
            missing.setdefault("pids", "this machine bounds processes by the slot uid's "
                               "RLIMIT_NPROC, and this evaluation has no slot uid")
        _enforce(applied, missing, policy)
        readable = list(moved.values()) if lease else list(readable)
        yield from _wrapped(names, applied, lease, group, moved, cwd=cwd, writable=writable,
                            readable=readable, env=env, python=python, limits=limits)


def _applied(names: tuple[str, ...], uid: bool, userns: bool, group: bool) -> tuple[str, ...]:
    """Returns the layers one evaluation has, its process limit as "pids:<how>"."""
    out = ["rlimits"] + (["reaper"] if "reaper" in names else [])
    if "docker" in names:
        out.append(f"pids:{pids.DOCKER}")
    else:
        out += [f"pids:{how}" for how, used in ((pids.UID, uid), (pids.USERNS, userns),
                                                (pids.CGROUP, group)) if used]
    out += [n for n in ("uid", "bwrap", "seccomp", "docker") if n in names]
    return tuple(out)


_WARNED: set[str] = set()


def reset() -> None:
    """Forgets the decision and the downgrades logged, so the next evaluation reads
    EVOFORGE_SANDBOX_LAYERS again (for tests)."""
    reset_decision()
    _WARNED.clear()


def _enforce(applied: tuple[str, ...], missing: dict[str, str], policy: str) -> None:
    """Raises Refused (strict) or logs once (best-effort) when a required layer is not applied."""
    have = {name.split(":", 1)[0] for name in applied}
    lacking = [name for name in required() if name not in have]
    if not lacking:
        return
    causes = "; ".join(f"{name}: {missing.get(name) or status(name).reason}" for name in lacking)
    if policy == BEST_EFFORT:
        if causes not in _WARNED:
            _WARNED.add(causes)
            log.warning("evaluations run without the sandbox layer(s) %s (evaluation.isolation = "
                        "'best-effort'): %s", ", ".join(lacking), causes)
        return
    raise Refused(f"isolation refused: the sandbox layer(s) {', '.join(lacking)} that this "
                  f"configuration asks for cannot be applied to this evaluation ({causes}); "
                  f"fix the cause, or set evaluation.isolation = 'best-effort' in the run config "
                  f"to run with the layers this machine has ({', '.join(applied)})")


def _slot_uid(cwd: str, writable: Sequence[str],
              readable: Sequence[str]) -> tuple[uids.Lease | None, dict[str, str], str]:
    """Returns (lease, staged copy of each readable folder, "") with cwd and the writable folders
    handed to the uid, or (None, {}, why) when no uid is free or a folder cannot be staged."""
    try:
        lease = uids.acquire()
    except (RuntimeError, OSError) as exc:
        return None, {}, str(exc)
    moved: dict[str, str] = {}
    try:
        for path in readable:
            real = os.path.realpath(path)
            moved.setdefault(real, str(staging.stage(real, lease.uid)))
    except staging.StagingError as exc:
        lease.release()
        return None, {}, f"staging a copy of the problem folder the slot uids can read: {exc}"
    for path in dict.fromkeys((*writable, cwd)):
        os.chown(path, lease.uid, lease.gid)
    return lease, moved, ""


def _wrapped(names: tuple[str, ...], applied: tuple[str, ...], lease: uids.Lease | None,
             group: cgroups.Cgroup | None, moved: dict[str, str], *, cwd: str,
             writable: Sequence[str], readable: Sequence[str], env: dict[str, str] | None,
             python: str, limits: Limits) -> Iterator[Isolation]:
    user = lease.user if lease else None
    common = {"active": names, "user": user, "applied": applied, "cgroup": group, "moved": moved}
    if "docker" in names:
        yield Isolation(mounts=(tuple(readable), tuple(writable), python), **common)
        return
    if "bwrap" not in names:
        yield Isolation(**common)
        return
    filter_fd = seccomp_fd() if "seccomp" in names else None
    try:
        argv = bwrap_args(cwd=cwd, writable=writable, readable=readable, python=python,
                          env=sandbox.minimal_env(cwd, env), limits=limits)
        if filter_fd is not None:
            argv += ["--seccomp", str(filter_fd)]
        inner = f"pids:{pids.USERNS}" in applied  # RLIMIT_NPROC set inside the user namespace
        wrapper = functools.partial(_prefix, [BWRAP, *argv, "--"], inner)
        yield Isolation(wrap=[wrapper], pass_fds=() if filter_fd is None else (filter_fd,),
                        **common)
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


def _prefix(prefix: list[str], nproc_inside: bool, argv: list[str],
            limits: Limits) -> list[str]:
    if nproc_inside:  # one less inside: bwrap's own process outside the namespace counts too
        count = max(1, limits.processes - 1)
        return [*prefix, str(sandbox.PRLIMIT), f"--nproc={count}:{count}", "--", *argv]
    return [*prefix, *argv]


def staged_path(path: str | Path, moved: dict[str, str]) -> str:
    """Returns path inside the staged copy of the folder it lies in, or path when none holds it."""
    real = os.path.realpath(path)
    for source, copy in moved.items():
        if real == source or real.startswith(source + os.sep):
            return copy + real[len(source):]
    return str(path)
