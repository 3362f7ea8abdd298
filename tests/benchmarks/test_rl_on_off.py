"""quality.rl_on_off: per-writer bookkeeping on known rows, position-matched pooling, and resuming
(runs already in the JSON are skipped; results with other settings are refused)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.quality.rl_on_off import trace
from benchmarks.quality.rl_on_off_report import position_matched

REPO = Path(__file__).resolve().parents[2]

SETTINGS = {"iterations": 4, "every": 8, "steps": 1, "lr": 3e-4, "threads": 1}


def _result(seed: int, arm: str, rows: list[tuple[str | None, str, float | None]],
            settings: dict[str, float] = SETTINGS) -> dict:
    return {"seed": seed, "arm": arm, "settings": settings, "load_avg": [1.0, 1.0, 1.0],
            "run_id": 1, "best_score": max(s for _, _, s in rows if s is not None),
            "initial_score": 0.25, "wall_s": 10.0, "adapters": [],
            **trace(rows, 0.25, maximize=True)}


def test_trace_counts_each_writer_and_keeps_the_best_so_far() -> None:
    rows = [(None, "child", 0.3), (None, "rejected", None), ("run1-v1-training", "child", 0.1),
            ("run1-v1", "child", 0.5), ("run1-v1", "rejected", None)]
    t = trace(rows, 0.25, maximize=True)
    assert t["curve"] == [0.3, 0.3, 0.3, 0.5, 0.5]
    assert t["writer_seq"] == ["base", "base", "training", "adapter", "adapter"]
    assert t["writers"]["base"] == {"samples": 2, "scored": 1, "mean_score": 0.3}
    assert t["writers"]["training"] == {"samples": 1, "scored": 1, "mean_score": 0.1}
    assert t["writers"]["adapter"] == {"samples": 2, "scored": 1, "mean_score": 0.5}


def test_adapter_children_are_set_against_rl_off_at_the_same_positions() -> None:
    off = _result(0, "off", [(None, "child", 0.3), (None, "child", 0.2), (None, "rejected", None),
                             (None, "child", 0.4)])
    on = _result(0, "on", [(None, "child", 0.3), ("run1-v1-training", "child", 0.1),
                           ("run1-v1", "child", 0.6), ("run1-v1", "child", 0.2)])
    pooled = position_matched([off, on])
    assert pooled["adapter"] == {"samples": 2, "scored": 2, "mean_score": 0.4}
    assert pooled["off_same_positions"]["samples"] == 2
    assert pooled["off_same_positions"]["scored"] == 1
    assert pooled["off_same_positions"]["mean_score"] == 0.4


def _script(json_path: Path, plot: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks.quality.rl_on_off", "--seeds", "0",
                           "--iterations", "4", "--json", str(json_path), "--plot", str(plot)],
                          capture_output=True, text=True, check=False, cwd=REPO, timeout=120)


def test_resume_skips_runs_already_in_the_json_and_reports_them(tmp_path: Path) -> None:
    rows = [(None, "child", 0.3), ("run1-v1", "child", 0.35)]
    data = [_result(0, "off", rows[:1] * 2), _result(0, "on", rows)]
    path = tmp_path / "rl.json"
    path.write_text(json.dumps(data))
    proc = _script(path, tmp_path / "rl.png")
    assert proc.returncode == 0, proc.stderr
    assert "seed 0 off: already in" in proc.stdout and "seed 0 on: already in" in proc.stdout
    assert json.loads(path.read_text()) == data  # nothing was run or rewritten
    assert "| 0 | on | 0.3500 |" in path.with_suffix(".md").read_text()
    assert (tmp_path / "rl.png").stat().st_size > 0


def test_results_with_other_settings_are_refused(tmp_path: Path) -> None:
    other = dict(SETTINGS, lr=1e-4)
    path = tmp_path / "rl.json"
    path.write_text(json.dumps([_result(0, "off", [(None, "child", 0.3)], other)]))
    proc = _script(path, tmp_path / "rl.png")
    assert proc.returncode != 0
    assert "other settings" in proc.stderr and "--json" in proc.stderr
