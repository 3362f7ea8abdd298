"""The bubblewrap command line and the seccomp filter of a sandboxed evaluation.

`bwrap_args` builds the options of one evaluation (namespaces unshared, read-only system,
private tmpfs, the interpreter and problem folders bound, empty environment); `seccomp_bpf`
builds the syscall filter that bwrap installs from a memfd (`--seccomp FD`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from evaluators.isolation import sandbox
from evaluators.isolation.limits import Limits, MiB

BWRAP = shutil.which("bwrap")
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


def base_args() -> list[str]:
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
               env: dict[str, str], limits: Limits) -> list[str]:
    """Returns the bwrap options (without the program) for one evaluation."""
    args = base_args()
    args += ["--size", str(limits.file_size_mb * MiB), "--tmpfs", "/tmp"]
    for path in interpreter_dirs(python):
        args += ["--ro-bind", path, path]
    for path in dict.fromkeys(os.path.realpath(p) for p in readable):
        args += ["--ro-bind", path, path]
    for path in dict.fromkeys(os.path.realpath(p) for p in (*writable, cwd)):
        args += ["--bind", path, path]
    args += ["--remount-ro", "/", "--chdir", os.path.realpath(cwd), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def interpreter_dirs(python: str) -> list[str]:
    """Returns the folders outside /usr the interpreter needs: its venv/prefix and our package."""
    exe = Path(python).absolute()
    found = [exe.parent.parent, Path(os.path.realpath(exe)).parent.parent, sandbox.PACKAGE_DIR]
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
    """Returns the seccomp filter as BPF bytes (built once); ImportError without pyseccomp."""
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


def seccomp_fd() -> int:
    """Returns a new memfd holding the BPF filter, positioned at its start (close-on-exec)."""
    fd = os.memfd_create("evoforge-seccomp", os.MFD_CLOEXEC)
    os.write(fd, seccomp_bpf())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
