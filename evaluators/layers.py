"""Isolation layers around a sandboxed evaluation: bubblewrap, seccomp, and process hygiene.

Layers are on by default where the machine allows them, decided once per process by
`available_layers()`. EVOFORGE_SANDBOX_LAYERS (comma-separated, e.g. "rlimits,bwrap") names the
layers to use; a layer left out is off. rlimits and the reaper are the base and always on. The uid
layer (evaluators/uids.py) runs each evaluation as its own unprivileged uid, so RLIMIT_NPROC holds
and the program cannot signal or read host processes; bwrap then runs unprivileged under it.
`isolation(...)` gives the argv wrappers and the file descriptors for one evaluation; `sweep(run_id)`
kills and reaps what an evaluation left behind (processes that carry its EVOFORGE_SANDBOX_RUN).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evaluators import docker_backend, sandbox, uids

log = logging.getLogger("evoforge.sandbox")
ENV_VAR = "EVOFORGE_SANDBOX_LAYERS"
RUN_VAR = "EVOFORGE_SANDBOX_RUN"  # marks every process of one evaluation, for the sweep
SWITCHABLE = ("uid", "bwrap", "seccomp")
OPT_IN = ("docker",)  # on only when named: the image is a choice
BASE = ("rlimits", "reaper")
BWRAP = shutil.which("bwrap")
PACKAGE_DIR = Path(__file__).resolve().parent
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates",
        "localtime", "mime.types")
_TOP = ("usr", "bin", "lib", "lib32", "lib64", "libx32", "sbin")
# Denied with EPERM (so Python raises a clear PermissionError) by the seccomp layer.
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
    "bpf", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "setns", "unshare", "perf_event_open", "keyctl", "add_key",
    "request_key", "userfaultfd", "open_by_handle_at", "name_to_handle_at", "acct", "quotactl",
    "syslog", "iopl", "ioperm", "settimeofday", "clock_settime", "fanotify_init", "move_mount",
    "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
    "io_uring_setup", "io_uring_enter", "io_uring_register")  # io_uring can open sockets too
_NEW_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET


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
    binds = [a for d in _interpreter_dirs(sys.executable) for a in ("--ro-bind", d, d)]
    probe = [BWRAP, *_bwrap_base(), *binds, "--", sys.executable, "-c", "import evaluators"]
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


# ---------------------------------------------------------------- process hygiene

_SUBREAPER: bool | None = None
_SUBREAPER_PID: int | None = None
_SUBREAPER_LOCK = threading.Lock()


def become_subreaper() -> bool:
    """Returns True once this process is a child subreaper (set once, guarded)."""
    global _SUBREAPER, _SUBREAPER_PID
    with _SUBREAPER_LOCK:
        if _SUBREAPER is None or _SUBREAPER_PID != os.getpid():  # fork does not inherit it
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _SUBREAPER = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
            except (OSError, AttributeError):
                _SUBREAPER = False
            _SUBREAPER_PID = os.getpid()
        return _SUBREAPER


_GROUPS: collections.deque[int] = collections.deque(maxlen=256)  # recent sandbox groups


def sweep(run_id: str, group: int | None = None) -> list[int]:
    """Returns the pids of processes marked with run_id that were still alive, now killed.

    Also reaps zombies this process adopted as subreaper from a sandbox: those from a sandbox's
    pid namespace, and those left in a recent sandbox's process group (never a group leader, so
    never a child another thread is about to wait for).
    """
    if group is not None:
        _GROUPS.append(group)
    marker = f"{RUN_VAR}={run_id}".encode() + b"\0"
    me, killed = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None:
            continue
        if stat[0] == "Z":
            if stat[1] == me and _adopted_from_sandbox(pid, stat[2]):
                _reap(pid)
        elif marker in _environ(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    for pid in killed:  # reap the ones that are our children (adopted as subreaper)
        stat = _stat(pid)
        if stat is not None and stat[1] == me:
            _reap(pid)
    return killed


def _stat(pid: int) -> tuple[str, int, int] | None:
    """Returns (state, parent pid, process group) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1]), int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read() + b"\0"
    except OSError:
        return b""


def _adopted_from_sandbox(pid: int, pgid: int) -> bool:
    """Returns True for a zombie from a sandbox's pid namespace or left in a sandbox's group."""
    if pgid != pid and pgid in _GROUPS:
        return True
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            nspid = next((ln for ln in f if ln.startswith(b"NSpid:")), b"")
    except OSError:
        return False
    return len(nspid.split()) > 2  # NSpid: <pid here> <pid in the sandbox's namespace>


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


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
    seccomp_fd = _seccomp_fd() if "seccomp" in names else None
    try:
        argv = bwrap_args(cwd=cwd, writable=writable, readable=readable, python=python,
                          env=sandbox.minimal_env(cwd, env), limits=limits or sandbox.Limits())
        if seccomp_fd is not None:
            argv += ["--seccomp", str(seccomp_fd)]
        wrapper = functools.partial(_prefix, [BWRAP, *argv, "--"])
        yield Isolation(wrap=[wrapper], active=names, user=user,
                        pass_fds=() if seccomp_fd is None else (seccomp_fd,))
    finally:
        if seccomp_fd is not None:
            os.close(seccomp_fd)


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


def _bwrap_base() -> list[str]:
    """Returns the bwrap options every sandbox shares: namespaces, system dirs, /proc, /dev."""
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "evoforge-sandbox"]
    for top in _TOP:
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args + ["--proc", "/proc", "--dev", "/dev"]


def bwrap_args(*, cwd: str, writable: Sequence[str], readable: Sequence[str], python: str,
               env: dict[str, str], limits: sandbox.Limits) -> list[str]:
    """Returns the bwrap options (without the program) for one evaluation."""
    args = _bwrap_base()
    args += ["--size", str(limits.file_size_mb * sandbox.MiB), "--tmpfs", "/tmp"]
    for path in _interpreter_dirs(python):
        args += ["--ro-bind", path, path]
    for path in dict.fromkeys(os.path.realpath(p) for p in readable):
        args += ["--ro-bind", path, path]
    for path in dict.fromkeys(os.path.realpath(p) for p in (*writable, cwd)):
        args += ["--bind", path, path]
    args += ["--remount-ro", "/", "--chdir", os.path.realpath(cwd), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def _interpreter_dirs(python: str) -> list[str]:
    """Returns the folders outside /usr the interpreter needs: its venv/prefix and our package."""
    exe = Path(python).absolute()
    found = [exe.parent.parent, Path(os.path.realpath(exe)).parent.parent, PACKAGE_DIR]
    if Path(python).absolute() == Path(sys.executable).absolute():
        found += [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)]
    out: list[str] = []
    for path in found:
        real = os.path.realpath(path)
        if real == "/" or any(real == f"/{t}" or real.startswith(f"/{t}/") for t in _TOP):
            continue
        if real not in out and Path(real).is_dir():
            out.append(real)
    return out


@functools.cache
def seccomp_bpf() -> bytes:
    """Returns the seccomp filter as BPF bytes (built once); raises ImportError without pyseccomp."""
    import pyseccomp as sc

    deny = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    flt.add_rule(deny, "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
    for bit in range(32):  # clone(2) asking for any new namespace
        if _NEW_NAMESPACES & (1 << bit):
            flt.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, 1 << bit, 1 << bit))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are out of reach: libc falls back
    for name in DENIED_SYSCALLS:
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            flt.add_rule(deny, name)
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return out.read()


def _seccomp_fd() -> int:
    """Returns a new memfd holding the BPF filter, positioned at its start (close-on-exec)."""
    fd = os.memfd_create("evoforge-seccomp", os.MFD_CLOEXEC)
    os.write(fd, seccomp_bpf())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
