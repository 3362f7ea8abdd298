"""The result store: JSON files under benchmarks/out/ (git-ignored), written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from benchmarks.harness.paths import OUT


def out_file(name: str, out: Path = OUT) -> Path:
    """Returns out/name, creating the folder."""
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def write_json(path: Path, payload: Any, indent: int = 1, default: Any = None) -> Path:
    """Writes payload as JSON; a kill mid-write keeps the previous file. Returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=indent, default=default))
    os.replace(tmp, path)
    return path


def read_json(path: Path, missing: Any = None) -> Any:
    """Returns the JSON stored in path, or missing when there is no such file."""
    return json.loads(path.read_text()) if path.exists() else missing
