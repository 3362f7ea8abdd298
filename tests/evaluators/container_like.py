"""Runs a command the way a default Docker container would constrain it, on this machine.

`python container_like.py [--user UID] -- COMMAND...` (as root) enters a new mount namespace in
which the cgroup hierarchies are read-only, drops CAP_SYS_ADMIN (setpriv), and installs a seccomp
filter that, like Docker's default profile, refuses new namespaces (unshare, setns, clone with
namespace flags) and mount with EPERM; with --user it also becomes that uid, as `docker run --user`
does. What it leaves is what evoforge meets inside a container started without extra privileges.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys

NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET


def confine(argv: list[str]) -> None:
    """Installs the seccomp filter, then execs argv; never returns."""
    import pyseccomp as sc

    deny = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    for bit in range(32):
        if NAMESPACE_FLAGS & (1 << bit):
            flt.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, 1 << bit, 1 << bit))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for name in ("unshare", "setns", "mount", "umount2", "pivot_root"):
        flt.add_rule(deny, name)
    flt.load()
    os.execvp(argv[0], argv)


def main() -> None:
    """Either sets up the container (outer call) or confines and execs (inner call)."""
    args = sys.argv[1:]
    if args[:1] == ["--confined"]:
        confine(args[2:])  # args[1] is "--"
    user = None
    if args[:1] == ["--user"]:
        user, args = int(args[1]), args[2:]
    command = args[1:]  # after "--"
    mounts = " && ".join(f"mount -o remount,bind,ro {p}" for p in cgroup_mounts())
    who = [f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    setpriv = [shutil.which("setpriv"), "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", *who,
               "--"]
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                          f'{mounts or "true"} && exec "$@"', "sh", *setpriv, sys.executable,
                          __file__, "--confined", "--", *command])


def cgroup_mounts() -> list[str]:
    """Returns the mount points of every cgroup hierarchy."""
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle
                if line.split(" - ")[1].split()[0] in ("cgroup", "cgroup2")]


if __name__ == "__main__":
    main()
