"""The code base stays ruff-clean (rules in pyproject.toml): style is checked with the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_code_is_ruff_clean() -> None:
    targets = ["service", "evaluators", "tests", "problems", "benchmarks", "migrations"]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                           *targets], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
