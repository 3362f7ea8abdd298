"""quality.suite: per-problem summary over seeds, gap curves, the figure, resuming saved runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.quality.suite import saved_rows
from benchmarks.quality.suite_report import (
    answer_fates,
    gap_curve,
    plot_suite,
    summarise,
    summary_markdown,
)

REPO = Path(__file__).resolve().parents[2]

MODEL = "SmolLM2-135M-Instruct"


def _row(problem: str, seed: int, best: float, direction: str = "maximize",
         initial: float = 1.0, known: float = 2.0, calls: int = 3) -> dict:
    diff = known - best if direction == "maximize" else best - known
    return {"problem": problem, "seed": seed, "direction": direction, "initial": initial,
            "best_strict": best, "best_known": known, "gap": diff / abs(known),
            "tier": "re-verified strict", "llm_calls": calls, "tokens": 100 * seed + 100,
            "wall_s": 10.0 * (seed + 1), "curve": [initial] + [best] * calls, "calls": calls,
            "model": MODEL}


def test_summary_gives_mean_min_max_over_seeds_per_problem() -> None:
    rows = [_row("a", 0, 1.0), _row("a", 1, 1.5), _row("a", 2, 1.9),
            _row("m", 0, 3.0, "minimize", initial=3.0), _row("m", 1, 2.5, "minimize", initial=3.0),
            {"problem": "a", "seed": 3, "error": "server down"}]
    a, m = summarise(rows)
    assert a["seeds"] == [0, 1, 2] and a["best_known"] == 2.0
    assert (a["best_min"], a["best_max"]) == (1.0, 1.9)
    assert a["best_mean"] == pytest.approx(4.4 / 3)
    assert (a["gap_min"], a["gap_max"]) == pytest.approx((0.05, 0.5))
    assert a["improved"] == 2  # seed 0 only kept the initial program
    assert a["tokens_mean"] == pytest.approx(200) and a["wall_mean"] == pytest.approx(20)
    assert m["improved"] == 1 and m["gap_min"] == pytest.approx(0.25)  # lower is better
    ulp = summarise([_row("u", 0, 0.6666666666666667, initial=0.6666666666666666)])
    assert ulp[0]["improved"] == 0  # the same score up to rounding is not an improvement
    table = summary_markdown([a, m])
    assert "| a | 0,1,2 | 1 | 1.46667 | 1 | 1.9 | 2 | 26.67 % | 5.00 % | 50.00 % | 2 / 3 |" in table


def test_gap_curve_follows_the_direction_and_skips_unknown_best() -> None:
    assert gap_curve(_row("a", 0, 1.5)) == pytest.approx([0.5, 0.25, 0.25, 0.25])
    assert gap_curve(_row("m", 0, 2.5, "minimize", initial=3.0)) == pytest.approx(
        [0.5, 0.25, 0.25, 0.25])
    assert gap_curve({**_row("q", 0, 1.0), "best_known": None}) == []


def test_answers_are_counted_by_fate_per_problem() -> None:
    rows = [{**_row("a", 0, 1.0), "failed": 2, "outcomes": {"child": 3, "rejected": 6,
                                                            "duplicate": 1}},
            {**_row("a", 1, 1.0), "failed": 0, "outcomes": {"rejected": 4, "too_similar": 1}},
            _row("b", 0, 1.0)]  # saved before outcomes were recorded: left out
    assert answer_fates(rows) == {"a": {"rejected before evaluation": 11,
                                        "duplicate / unchanged": 1, "evaluated, failed": 2,
                                        "evaluated, valid": 1}}


def test_suite_figure_is_written(tmp_path: Path) -> None:
    rows = [{**_row("a", s, 1.0 + 0.3 * s), "failed": 1, "outcomes": {"child": 2, "rejected": 1}}
            for s in range(3)] + [_row("b", 0, 1.2)]
    assert plot_suite(rows, tmp_path / "g.png", "title")
    assert (tmp_path / "g.png").stat().st_size > 10_000


def test_saved_rows_are_only_those_with_the_same_budget_and_model(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps([_row("a", 0, 1.0), _row("b", 0, 1.0, calls=5)]))
    (tmp_path / "s.partial.json").write_text(json.dumps(
        [_row("a", 1, 1.0), {**_row("c", 0, 1.0), "model": "other"},
         {"problem": "d", "seed": 0, "error": "timed out"}]))
    assert set(saved_rows(tmp_path, "s", 3, MODEL)) == {("a", 0), ("a", 1)}
    assert saved_rows(tmp_path, "missing", 3, MODEL) == {}


def test_a_saved_run_is_not_run_again_and_other_rows_are_kept(tmp_path: Path) -> None:
    # quickstart seed 0 and autocorrelation_third seed 0 finished in an earlier invocation
    saved = [{**_row("quickstart", 0, 0.9, initial=0.5), "best_known": None, "gap": None,
              "calls": 1, "wall_s": 12345.0},
             {**_row("autocorrelation_third", 0, 1.9, "minimize", initial=2.0, known=1.4557),
              "calls": 1}]
    (tmp_path / "suite.json").write_text(json.dumps(saved))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.quality.suite",
                           "--problems", "quickstart", "--calls", "1", "--seeds", "0,1",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "quickstart seed 0: saved, skipped" in proc.stdout
    assert "quickstart seed 1: 1 LLM calls" in proc.stdout
    rows = json.loads((tmp_path / "suite.json").read_text())
    assert [(r["problem"], r["seed"]) for r in rows] == [
        ("quickstart", 0), ("quickstart", 1), ("autocorrelation_third", 0)]
    assert rows[0]["wall_s"] == 12345.0  # the saved row as it was
    fresh = rows[1]
    assert fresh["llm_calls"] == 1 and sum(fresh["outcomes"].values()) == 1
    assert fresh["calls"] == 1 and fresh["model"] == MODEL and len(fresh["load_avg"]) == 3
    assert "| autocorrelation_third | 0 |" in (tmp_path / "suite.md").read_text()
    assert (tmp_path / "suite.png").exists()


def test_report_merges_a_second_invocation_without_running_anything(tmp_path: Path) -> None:
    (tmp_path / "suite.json").write_text(json.dumps([_row("a", 0, 1.0), _row("b", 0, 1.5),
                                                     _row("a", 2, 1.2)]))
    (tmp_path / "suite_b.json").write_text(json.dumps([_row("a", 1, 1.8), _row("a", 2, 1.9)]))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.quality.suite", "--report", "--merge",
                           "suite_b", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "suite.json").read_text())
    assert [(r["problem"], r["seed"], r["best_strict"]) for r in rows] == [
        ("a", 0, 1.0), ("a", 1, 1.8), ("a", 2, 1.2), ("b", 0, 1.5)]  # the first file wins
    md = (tmp_path / "suite.md").read_text()
    assert "| a | 0,1,2 | 1 | 1.33333 | 1 | 1.8 |" in md and "| b | 0 |" in md
