"""Where things are: the repository, benchmarks/out, the problem folders, the evoforge command."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
OUT = BENCHMARKS / "out"  # git-ignored: every result file, log and plot of a benchmark
PROBLEMS = ROOT / "problems"
# the CLI with the interpreter running the benchmark; `-m service.cli` (its __main__ imports the
# app), not `-m service.cli.app`: run as __main__, the app module would be imported twice
EVOFORGE = (sys.executable, "-m", "service.cli")


def is_problem(folder: Path) -> bool:
    """Returns True for a problem folder: an evaluator.py, or a problem.toml (two-phase: none)."""
    return folder.is_dir() and any((folder / f).exists() for f in ("evaluator.py", "problem.toml"))


def find_problem(name: str) -> Path | None:
    """Returns the folder of a problem given by path or by name under problems/, or None."""
    hits = [c for c in (Path(name), PROBLEMS / name) if is_problem(c)]
    return hits[0].resolve() if hits else None


def all_problems() -> list[Path]:
    """Returns every problem folder under problems/, sorted by name."""
    return sorted(p for p in PROBLEMS.iterdir() if is_problem(p))
