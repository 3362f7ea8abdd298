"""Which isolation layers this process can apply and which ones the configuration asks for,
decided (and logged) once per process.

EVOFORGE_SANDBOX_LAYERS (comma-separated, e.g. "rlimits,uid,bwrap") names the switchable layers to
use; one left out is off. rlimits, the reaper and pids (a process and thread limit per evaluation,
isolation/pids.py) are the base: always on where possible and always asked for. A layer the
variable names is asked for: if this machine cannot give it, strict evaluations are refused.
Unset, the variable asks for every switchable layer this machine has (logged once, with the reason
for each one it lacks): strict then holds every evaluation to what the machine can do, so the
default works wherever a process limit exists. docker is on only when named, and then stands in
for bwrap and seccomp. `available_layers()` says which layers are active and why (not);
`required()` which ones a strict evaluation must have.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass

from evaluators.isolation import docker_backend, pids, sandbox, uids
from evaluators.isolation.bwrap import BWRAP, interpreter_dirs, seccomp_bpf
from evaluators.isolation.bwrap import base_args as bwrap_base_args
from evaluators.isolation.reaper import become_subreaper

log = logging.getLogger("evoforge.sandbox")
ENV_VAR = "EVOFORGE_SANDBOX_LAYERS"
SWITCHABLE = ("uid", "bwrap", "seccomp")
OPT_IN = ("docker",)  # on only when named: the image is a choice
BASE = ("rlimits", "reaper", "pids")


@dataclass(frozen=True)
class LayerStatus:
    """Whether one isolation layer is active in this process, and why (not)."""

    name: str
    active: bool
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {'active' if self.active else 'missing'} — {self.reason}"


@dataclass(frozen=True)
class Decision:
    """Every layer's status, the layers a strict evaluation needs, and how processes are bounded."""

    statuses: tuple[LayerStatus, ...]
    required: tuple[str, ...]
    pids: pids.PidsDecision


_DECISION: Decision | None = None
_DECISION_LOCK = threading.Lock()


def available_layers() -> list[LayerStatus]:
    """Returns the status of every layer, decided (and logged) once per process."""
    return list(decided().statuses)


def active_names() -> tuple[str, ...]:
    """Returns the names of the active layers."""
    return tuple(s.name for s in decided().statuses if s.active)


def required() -> tuple[str, ...]:
    """Returns the layers the configuration asks for: a strict evaluation without one is refused."""
    return decided().required


def status(name: str) -> LayerStatus:
    """Returns the status of one layer."""
    return next(s for s in decided().statuses if s.name == name)


def reset() -> None:
    """Forgets the decision, so the next call reads EVOFORGE_SANDBOX_LAYERS again (for tests)."""
    global _DECISION
    with _DECISION_LOCK:
        _DECISION = None


def decided() -> Decision:
    """Returns this process's decision, making it on first use."""
    global _DECISION
    with _DECISION_LOCK:
        if _DECISION is None:
            _DECISION = _decide()
        return _DECISION


def _decide() -> Decision:
    spec = os.environ.get(ENV_VAR)
    wanted = _wanted(spec)
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
                                       f"here ({bwrap.reason}); bwrap runs as root instead; allow "
                                       f"unprivileged user namespaces, or set {ENV_VAR}="
                                       "bwrap,seccomp to leave the slot uids out")
            bwrap = as_root
        else:
            bwrap = LayerStatus("bwrap", False, f"{bwrap.reason}; as root too: {as_root.reason}")
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
    limit = pids.decide(uid=statuses[2].active, bwrap=bwrap.active, docker=docker.active)
    statuses.append(LayerStatus("pids", bool(limit.mechanisms), limit.reason if limit.mechanisms
                                else pids.missing_reason(limit)))
    expected = _wanted(spec) | set(BASE)
    if os.geteuid() != 0 and not (spec or "").strip():
        expected.discard("uid")  # a user has no uids to hand out: no warning unless named
    for layer in statuses:  # a layer nobody expects (docker unless named) is no warning
        quiet = layer.active or layer.name not in expected
        (log.info if quiet else log.warning)("sandbox layer %s", layer)
    return Decision(tuple(statuses), _required(spec, statuses), limit)


def _required(spec: str | None, statuses: list[LayerStatus]) -> tuple[str, ...]:
    """Returns the base layers and the ones EVOFORGE_SANDBOX_LAYERS names (unset: the switchable
    layers this machine has); docker, when on, stands in for bwrap and seccomp."""
    active = {s.name for s in statuses if s.active}
    if spec is None or not spec.strip():
        asked = [n for n in SWITCHABLE if n in active]
    else:
        named = _wanted(spec)
        asked = [n for n in (*SWITCHABLE, *OPT_IN) if n in named]
    if "docker" in active:
        asked = [n for n in asked if n not in ("bwrap", "seccomp")]
    return (*BASE, *asked)


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
                       "killed by the sweep but orphans go to init (needs Linux 3.4 or later)")


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
