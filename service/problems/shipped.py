"""The problems evoforge ships, by name: package data in a wheel (setup.py copies the checkout's
problems/ to service/problems/data), the top-level problems/ folder in a checkout."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
FOLDERS = (_HERE / "data", _HERE.parents[1] / "problems")  # a wheel, then a checkout


def shipped() -> dict[str, Path]:
    """Returns name -> folder of every shipped problem (a folder with problem.toml or
    config.yaml), sorted by name."""
    root = next((f for f in FOLDERS if f.is_dir()), None)
    if root is None:
        return {}
    return {p.name: p for p in sorted(root.iterdir())
            if (p / "problem.toml").is_file() or (p / "config.yaml").is_file()}
