"""Peer venvs, benchmarks/.venv-<peer> (git-ignored): created from PyPI on first use, reused after.

A peer runs with its own python and packages; none of its code is in this repository.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.paths import BENCHMARKS

BASE_PYTHON = "/usr/bin/python3"  # world-readable, unlike the pyenv python under root's home


def venv_dir(peer: str) -> Path:
    """Returns benchmarks/.venv-<peer>."""
    return BENCHMARKS / f".venv-{peer}"


@dataclass(frozen=True)
class PeerVenv:
    """A peer's venv: the pinned packages it needs and a probe that passes when they are there."""

    peer: str
    packages: tuple[str, ...]
    probe: str  # Python code that exits 0 when the venv holds what the benchmarks need

    @property
    def python(self) -> Path:
        """Returns the venv's python (it may not exist yet)."""
        return venv_dir(self.peer) / "bin" / "python"

    def ready(self) -> bool:
        """Returns True when the venv exists and its probe passes."""
        return self.python.exists() and subprocess.run(
            [str(self.python), "-c", self.probe], check=False, capture_output=True).returncode == 0

    def existing(self) -> Path | None:
        """Returns the venv's python when the venv exists, else None (nothing is installed)."""
        return self.python if self.python.exists() else None

    def ensure(self, log: Callable[[str], object] = print) -> Path:
        """Returns the venv's python, creating the venv or installing what it lacks first."""
        if self.ready():
            return self.python
        log(f"creating {venv_dir(self.peer)} with {' '.join(self.packages)} "
            "(~10 s from pip's cache, a minute otherwise)")
        if not self.python.exists():
            subprocess.run([BASE_PYTHON, "-m", "venv", str(venv_dir(self.peer))], check=True)
        subprocess.run([str(self.python), "-m", "pip", "install", "-q", *self.packages], check=True)
        return self.python


OPENEVOLVE_VERSION = "0.4.1"
# scipy: problems may use it ("numpy and scipy are available")
OPENEVOLVE = PeerVenv("openevolve", (f"openevolve=={OPENEVOLVE_VERSION}", "scipy"),
                      "import sys, openevolve, scipy; "
                      f"sys.exit(openevolve.__version__ != {OPENEVOLVE_VERSION!r})")
