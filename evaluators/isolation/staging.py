"""A read-only copy of a problem folder that the slot uids can read, made once per version.

The uid layer runs the evaluation as an unprivileged uid, which cannot enter a folder below a
private one (/root, or what `mktemp -d` makes). `stage(folder, uid)` copies the folder's files to
ROOT/<sha256 of its files>: owned by this user, folders 0555, files 0444 (0555 when executable), so
a candidate reads the evaluator and its data but never changes what the next candidate is scored
with. ROOT is $EVOFORGE_HOME/staged when other users can enter it, else /var/lib/evoforge/staged.
A version is copied into a private temporary folder and renamed into place in one step: concurrent
workers either find it complete or race to rename the same content, and the loser drops its copy.
A folder's digest is cached on the size, mtime and inode of its files: an unchanged folder is only
listed, not read, per evaluation. __pycache__, .git, .evoforge and *.pyc are left out.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
import threading
from pathlib import Path

from evaluators.isolation import uids

HOME_VAR = "EVOFORGE_HOME"
SYSTEM_ROOT = Path("/var/lib/evoforge/staged")
MAX_VAR = "EVOFORGE_STAGE_MAX_MB"
DEFAULT_MAX_MB = 4096
SKIP = frozenset({"__pycache__", ".git", ".evoforge"})


class StagingError(OSError):
    """The folder could not be staged; the message names the cause and the fix."""


_DIGESTS: dict[str, tuple[tuple, str]] = {}
_LOCK = threading.Lock()


def stage(folder: str | Path, uid: int) -> Path:
    """Returns the staged read-only copy of folder that uid can read, making it if needed."""
    source = Path(os.path.realpath(folder))
    root = staging_root(uid)
    files = _listing(source, root)
    digest = _digest(source, files)
    target = root / digest
    if not target.is_dir():
        _copy(files, root, target)
    with contextlib.suppress(OSError):
        os.utime(target)  # when this version was last used
    return target


def staging_root(uid: int) -> Path:
    """Returns the folder staged copies go in: one uid can enter, writable by this user only."""
    home = Path(os.environ.get(HOME_VAR, ".evoforge")).resolve() / "staged"
    reasons = []
    for root in (home, SYSTEM_ROOT):
        try:
            root.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            reasons.append(f"{root}: {exc.strerror}")
            continue
        why = _unsafe(root) or uids.unreachable(root, uid)
        if why is None:
            return root
        reasons.append(why)
    raise StagingError(errno.EACCES, "no folder for staged problem copies: " + "; ".join(reasons)
                       + f"; set {HOME_VAR} to a folder other users can enter (chmod o+x on the "
                       f"way to it), or let root create {SYSTEM_ROOT}")


def _unsafe(root: Path) -> str | None:
    info = root.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        return (f"{root} must be a folder owned by uid {os.geteuid()} that no one else can write "
                f"(it is mode {stat.S_IMODE(info.st_mode):04o}, owner {info.st_uid})")
    return None


def _listing(source: Path, root: Path) -> list[tuple[str, Path, os.stat_result]]:
    """Returns (relative path, path, stat) of every file to stage, sorted; follows symlinks."""
    if not source.is_dir():
        raise StagingError(errno.ENOENT, f"{source}: not a folder; check the problem path")
    limit = int(os.environ.get(MAX_VAR) or DEFAULT_MAX_MB) * 1024 * 1024
    found, seen, total, todo = [], set(), 0, [(source, "")]
    while todo:
        folder, prefix = todo.pop()
        real = os.path.realpath(folder)
        if real in seen or real == str(root) or real.startswith(f"{root}/"):
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise StagingError(exc.errno, f"{folder}: {exc.strerror}; make it readable") from None
        for entry in entries:
            if entry.name in SKIP or entry.name.endswith(".pyc"):
                continue
            with contextlib.suppress(OSError):  # a broken link, a file removed meanwhile
                if entry.is_dir():
                    todo.append((Path(entry.path), f"{prefix}{entry.name}/"))
                elif entry.is_file():
                    info = entry.stat()
                    total += info.st_size
                    found.append((f"{prefix}{entry.name}", Path(entry.path), info))
        if total > limit:
            raise StagingError(errno.EFBIG, f"{source} holds more than {limit >> 20} MiB to stage "
                               f"for the slot uids; keep large data out of the problem folder or "
                               f"raise {MAX_VAR}")
    return sorted(found, key=lambda item: item[0])


def _digest(source: Path, files: list[tuple[str, Path, os.stat_result]]) -> str:
    """Returns the sha256 of the files' names, executable bits and contents (cached on stat)."""
    key = tuple((rel, i.st_size, i.st_mtime_ns, i.st_ino, i.st_mode) for rel, _, i in files)
    with _LOCK:
        cached = _DIGESTS.get(str(source))
    if cached is not None and cached[0] == key:
        return cached[1]
    whole = hashlib.sha256()
    for rel, path, info in files:
        content = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    content.update(block)
        except OSError as exc:
            raise StagingError(exc.errno, f"{path}: {exc.strerror}; make it readable") from None
        mode = "x" if info.st_mode & 0o111 else "-"
        whole.update(f"{rel}\0{mode}\0{content.hexdigest()}\n".encode())
    digest = whole.hexdigest()
    with _LOCK:
        _DIGESTS[str(source)] = (key, digest)
    return digest


def _copy(files: list[tuple[str, Path, os.stat_result]], root: Path, target: Path) -> None:
    """Copies files into a private folder, makes it read-only and renames it to target."""
    work = root / f".tmp-{target.name[:16]}-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir(mode=0o700)
    try:
        folders = {work}
        for rel, path, info in files:
            dest = work / rel
            for parent in reversed(dest.relative_to(work).parents[:-1]):
                if (work / parent) not in folders:
                    (work / parent).mkdir(mode=0o700)
                    folders.add(work / parent)
            shutil.copyfile(path, dest)
            os.chmod(dest, 0o555 if info.st_mode & 0o111 else 0o444)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            os.chmod(folder, 0o555)
        try:
            os.rename(work, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not target.is_dir():
                raise StagingError(exc.errno, f"staging into {target} failed: {exc.strerror}; "
                                   f"check that {root} is on a writable disk") from None
    except OSError as exc:
        if isinstance(exc, StagingError):
            raise
        raise StagingError(exc.errno, f"copying into {work} failed: {exc.strerror}; check the "
                           f"free space and permissions of {root}") from None
    finally:
        if work.exists():
            _remove(work)


def _remove(folder: Path) -> None:
    for path, dirs, _ in os.walk(folder):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(path, name), 0o700)
    shutil.rmtree(folder, ignore_errors=True)
