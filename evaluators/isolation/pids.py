"""The per-evaluation process and thread limit, and which mechanisms give it on this machine.

Each evaluation gets the first of these that applies to it (Limits.processes each):
1. RLIMIT_NPROC under the evaluation's slot uid (isolation/uids.py): root with the uid layer;
2. RLIMIT_NPROC set inside bwrap's new user namespace: a user who is not root. Since Linux 5.14
   the kernel counts RLIMIT_NPROC per user namespace, so only the sandbox's processes count, not
   the user's own; root is exempt from RLIMIT_NPROC in every namespace, hence not for root;
3. a pids cgroup per evaluation (isolation/cgroups.py): root without a slot uid for this
   evaluation, or a user with a delegated cgroup and no bwrap. Last because moving a process into
   a new cgroup costs a wait for an RCU grace period on cgroup v1 (about 15 ms per fresh
   evaluation here), where the two rlimits cost nothing;
4. the docker layer's container pids limit.
An evaluation records the one it had as "pids:<mechanism>" among its layers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from evaluators.isolation import cgroups, sandbox
from evaluators.isolation.bwrap import BWRAP, interpreter_dirs
from evaluators.isolation.bwrap import base_args as bwrap_base_args

CGROUP, UID, USERNS, DOCKER = "cgroup", "uid", "userns", "docker"
_PROBE_NPROC = 6
_PROBE = ("import os, time\nn = 0\ntry:\n    while n < 40:\n        if os.fork() == 0:\n"
          "            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError:\n"
          "    pass\nprint(n)\n")


@dataclass(frozen=True)
class PidsDecision:
    """The mechanisms that bound an evaluation's processes here, and why each other one does not."""

    mechanisms: tuple[str, ...]
    cgroup: cgroups.Hierarchy | None
    reason: str


def decide(*, uid: bool, bwrap: bool, docker: bool, python: str = sys.executable) -> PidsDecision:
    """Returns the process-limit mechanisms usable here, given which other layers are active."""
    if docker:
        return PidsDecision((DOCKER,), None, "the container's pids limit (docker --pids-limit)")
    found: list[str] = []
    if uid:
        found.append(UID)
        notes = ["slot uid: RLIMIT_NPROC counts the slot uid's processes only"]
    else:
        notes = ["slot uid: not in use (needs root and the uid layer)"]
    if os.geteuid() == 0:
        notes.append("user namespace: root is exempt from RLIMIT_NPROC in every namespace")
    elif not bwrap:
        notes.append("user namespace: needs the bwrap layer (bubblewrap) to make one")
    else:
        ok, why = userns_probe(python)
        if ok:
            found.append(USERNS)
        notes.append(f"user namespace: {why}")
    where, how = cgroups.find()
    if where is not None:
        ok, how = cgroups.probe(where)
        if ok:
            found.append(CGROUP)
        else:
            where = None
    notes.append(f"cgroup: {how}")
    return PidsDecision(tuple(found), where, "; ".join(notes))


def userns_probe(python: str = sys.executable) -> tuple[bool, str]:
    """Returns (usable, reason): RLIMIT_NPROC set inside a bwrap user namespace bounds a fork loop
    there, whatever this user runs outside it."""
    if sandbox.PRLIMIT is None or BWRAP is None:
        return False, "needs prlimit (util-linux) and bwrap"
    binds = [a for d in interpreter_dirs(python) for a in ("--ro-bind", d, d)]
    argv = [BWRAP, *bwrap_base_args(), *binds, "--", sandbox.PRLIMIT,
            f"--nproc={_PROBE_NPROC}:{_PROBE_NPROC}", "--", python, "-c", _PROBE]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False, cwd="/")
        made = int(done.stdout.decode().strip() or "-1")
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return False, f"probe failed: {exc}"
    if 0 < made < _PROBE_NPROC:
        return True, (f"RLIMIT_NPROC set inside bwrap's user namespace held a fork loop to {made} "
                      f"children (limit {_PROBE_NPROC}); this user's other processes do not count")
    if made >= _PROBE_NPROC:
        return False, (f"RLIMIT_NPROC inside a user namespace did not hold ({made} children under "
                       f"a limit of {_PROBE_NPROC})")
    last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return False, (f"a fork loop under RLIMIT_NPROC inside a user namespace made no child "
                   f"({last[0]}): this kernel counts the user's own processes (Linux before 5.14)")


def missing_reason(decision: PidsDecision) -> str:
    """Returns why no mechanism applies, and the fixes, for a refusal message."""
    return (f"no per-evaluation process limit is possible here ({decision.reason}); fix one: run "
            f"evoforge as root (slot uids, a pids cgroup), delegate a pids cgroup to this user "
            f"and set {cgroups.ENV_VAR}, or install bubblewrap and allow unprivileged user "
            "namespaces")
