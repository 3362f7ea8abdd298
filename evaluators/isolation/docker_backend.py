"""The Docker backend (docker SDK): one throw-away container per evaluation, where an engine exists.

Opt in with EVOFORGE_SANDBOX_LAYERS=...,docker (an engine and an image must be chosen on purpose);
the layer report says "docker: not available (reason)" when there is no engine. The container runs
this machine's interpreter and evoforge source (read-only binds, like bubblewrap does) on the image
EVOFORGE_DOCKER_IMAGE (default debian:bookworm-slim): no network, read-only root, a size-limited
/tmp, all capabilities dropped, no-new-privileges, the slot uid, cgroup memory and pids limits and
the sandbox's rlimits as ulimits. `run_container` returns a sandbox.SandboxOutcome like sandbox.run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluators.isolation import sandbox
from evaluators.isolation.limits import Limits, MiB, clip

IMAGE_VAR = "EVOFORGE_DOCKER_IMAGE"
DEFAULT_IMAGE = "debian:bookworm-slim"
NOBODY = (65534, 65534)
_SYSTEM = ("/usr", "/bin", "/lib", "/lib64", "/sbin")


def image() -> str:
    """Returns the image evaluations run on (EVOFORGE_DOCKER_IMAGE, else the default)."""
    return os.environ.get(IMAGE_VAR, "").strip() or DEFAULT_IMAGE


def detect(timeout_s: float = 3.0) -> tuple[bool, str]:
    """Returns (available, reason): the SDK imports, an engine answers, the image is there."""
    try:
        import docker
    except ImportError as exc:
        return False, (f"docker: not available (the docker SDK is not installed: {exc}; pip "
                       "install docker)")
    try:
        client = docker.from_env(timeout=max(1, int(timeout_s)))
        client.ping()
    except docker.errors.DockerException as exc:
        host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return False, (f"docker: not available (no engine at {host}: {_short(exc)}); start a "
                       "Docker engine or set DOCKER_HOST, or leave docker out of "
                       "EVOFORGE_SANDBOX_LAYERS")
    try:
        version = client.version().get("Version", "?")
        client.images.get(image())
    except docker.errors.ImageNotFound:
        return False, (f"docker: not available (engine found, but the image {image()} is "
                       f"missing; docker pull {image()} or set {IMAGE_VAR})")
    except docker.errors.DockerException as exc:
        return False, f"docker: not available (engine error: {_short(exc)})"
    finally:
        client.close()
    return True, f"docker: engine {version}, image {image()}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def container_spec(argv: Sequence[str], *, cwd: str, limits: Limits,
                   env: dict[str, str] | None = None, user: tuple[int, int] | None = None,
                   readable: Sequence[str] = (), writable: Sequence[str] = (),
                   python: str = sys.executable, labels: dict[str, str] | None = None,
                   image_name: str | None = None) -> dict[str, Any]:
    """Returns the keyword arguments of `client.containers.create` for one evaluation."""
    from docker.types import Ulimit

    uid, gid = user or NOBODY
    volumes: dict[str, dict[str, str]] = {}
    for path in (*_SYSTEM, *_interpreter_dirs(python), *readable):
        real = os.path.realpath(path)
        if Path(real).is_dir():
            volumes.setdefault(real, {"bind": real, "mode": "ro"})
    for path in (*writable, cwd):
        real = os.path.realpath(path)
        volumes[real] = {"bind": real, "mode": "rw"}
    cpu = limits.cpu_seconds()
    fsize = limits.file_size_mb * MiB
    spec: dict[str, Any] = {
        "image": image_name or image(), "command": list(argv), "working_dir": os.path.realpath(cwd),
        "environment": sandbox.minimal_env(os.path.realpath(cwd), env),
        "user": f"{uid}:{gid}", "network_mode": "none", "read_only": True,
        "tmpfs": {"/tmp": f"size={limits.file_size_mb}m,mode=1777"},
        "volumes": volumes, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
        "pids_limit": limits.processes, "nano_cpus": 1_000_000_000, "ipc_mode": "private",
        "ulimits": [Ulimit(name="cpu", soft=cpu, hard=cpu + 1),
                    Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
                    Ulimit(name="fsize", soft=fsize, hard=fsize),
                    Ulimit(name="core", soft=0, hard=0)],
        "labels": {"evoforge": "evaluation", **(labels or {})},
        "detach": True, "stdin_open": False, "tty": False,
    }
    if limits.memory_mb is not None:  # cgroup memory instead of RLIMIT_AS; no swap on top
        spec["mem_limit"] = f"{limits.memory_mb}m"
        spec["memswap_limit"] = f"{limits.memory_mb}m"
    return spec


def _interpreter_dirs(python: str) -> list[str]:
    """Returns the folders outside the system dirs the interpreter and evoforge live in."""
    found = [Path(python).absolute().parent.parent, Path(os.path.realpath(python)).parent.parent,
             sandbox.PACKAGE_DIR, Path(sys.prefix)]
    out = []
    for path in found:
        real = os.path.realpath(path)
        if real != "/" and not any(real == s or real.startswith(s + "/") for s in _SYSTEM):
            out.append(real)
    return list(dict.fromkeys(out))


def run_container(argv: Sequence[str], *, cwd: str, limits: Limits,
                  env: dict[str, str] | None = None, user: tuple[int, int] | None = None,
                  readable: Sequence[str] = (), writable: Sequence[str] = (),
                  python: str = sys.executable, client: Any = None) -> sandbox.SandboxOutcome:
    """Returns the outcome of argv run in a new container under limits; the container is removed."""
    import docker

    own = client is None
    client = client or docker.from_env()
    spec = container_spec(argv, cwd=cwd, limits=limits, env=env, user=user, readable=readable,
                          writable=writable, python=python)
    start = time.monotonic()
    container = client.containers.create(**spec)
    timed_out, code = False, None
    try:
        container.start()
        try:
            code = int(container.wait(timeout=limits.timeout_s)["StatusCode"])
        except Exception:  # noqa: BLE001 - requests' ReadTimeout / ConnectionError: time is up
            timed_out = True
            with contextlib.suppress(docker.errors.DockerException):
                container.kill()
        out = container.logs(stdout=True, stderr=False) or b""
        err = container.logs(stdout=False, stderr=True) or b""
        oom = bool(container.attrs.get("State", {}).get("OOMKilled")) if not timed_out else False
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)
        if own:
            client.close()
    return outcome_from(code, timed_out, out, err, time.monotonic() - start, limits, oom)


def outcome_from(code: int | None, timed_out: bool, out: bytes, err: bytes, duration_s: float,
                 limits: Limits, oom: bool = False) -> sandbox.SandboxOutcome:
    """Returns a SandboxOutcome for a container's exit code (128+N: killed by signal N)."""
    half = limits.output_bytes // 2
    signal_name, returncode = None, code
    if code is not None and 128 < code < 128 + 65:
        with contextlib.suppress(ValueError):
            import signal

            signal_name = signal.Signals(code - 128).name
            returncode = -(code - 128)
    stderr = clip(err.decode("utf-8", errors="replace"), 2 * half)
    if oom:
        stderr += "\nout of memory: the container hit its memory limit (OOMKilled)"
    return sandbox.SandboxOutcome(
        returncode=None if timed_out else returncode, signal=signal_name, timed_out=timed_out,
        stdout=clip(out.decode("utf-8", errors="replace"), 2 * half), stderr=stderr,
        duration_s=duration_s, timeout_s=limits.timeout_s,
        stdout_dropped=max(0, len(out) - 2 * half), stderr_dropped=max(0, len(err) - 2 * half))
