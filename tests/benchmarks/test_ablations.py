"""The ablation script, run for real (embedded SmolLM2, local sandbox) with a tiny budget, and its
paired statistics on known inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness.stats import paired_stats, sign_test
from benchmarks.quality.ablations import complete_seeds

REPO = Path(__file__).resolve().parents[2]


def _ablations(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs benchmarks.quality.ablations on quickstart into a scratch folder."""
    return subprocess.run([sys.executable, "-m", "benchmarks.quality.ablations",
                           "--problems", "quickstart",
                           "--out", str(out), *args], check=False, capture_output=True,
                          text=True, cwd=REPO, timeout=600)


@pytest.mark.llm
def test_ablations_saves_paired_runs_and_skips_them_when_resumed(tmp_path: Path) -> None:
    args = ("--configs", "baseline,novelty", "--seeds", "0", "--iterations", "2")
    first = _ablations(tmp_path, *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    saved = json.loads((tmp_path / "ablations_quickstart.json").read_text())
    runs = {r["config"]: r for r in saved["results"]}
    assert set(runs) == {"baseline", "novelty"}
    for r in runs.values():
        assert r["seed"] == 0 and r["iterations"] == 2 and r["llm_calls"] == 2
        assert len(r["by_call"]) == 3 and r["by_call"][0] == r["initial"]
        assert r["by_call"][-1] == r["best"] >= r["initial"]
        assert r["tokens"] == r["by_tokens"][-1][0] > 0
    rows = {row["config"]: row for row in saved["table"]}
    assert rows["baseline"]["paired_diff"] is None
    assert rows["novelty"]["paired_diff"] == pytest.approx(runs["novelty"]["best"]
                                                           - runs["baseline"]["best"])
    assert (tmp_path / "ablations_quickstart.png").stat().st_size > 0

    again = _ablations(tmp_path, *args)  # everything saved: nothing reruns
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "seed 0" not in again.stdout
    assert json.loads((tmp_path / "ablations_quickstart.json").read_text())["results"] == \
        saved["results"]

    more = _ablations(tmp_path, "--configs", "baseline", "--seeds", "0", "--iterations", "1")
    assert "quickstart seed 0 baseline" in more.stdout  # another budget is another result
    results = json.loads((tmp_path / "ablations_quickstart.json").read_text())["results"]
    assert sorted((r["config"], r["iterations"]) for r in results) == [("baseline", 1),
                                                                         ("novelty", 2)]


def test_sign_test_is_exact_and_two_sided() -> None:
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(0, 5) == pytest.approx(2 / 32)
    assert sign_test(4, 1) == pytest.approx(2 * 6 / 32)
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 3) == 1.0


def test_paired_bootstrap_interval_brackets_the_mean_within_the_observed_range() -> None:
    diffs = [0.1, 0.2, -0.05, 0.0, 0.3]
    stats = paired_stats(diffs)
    lo, hi = stats["ci"]
    assert min(diffs) <= lo < stats["mean"] < hi <= max(diffs)
    assert (stats["wins"], stats["ties"], stats["losses"]) == (3, 1, 1)
    assert paired_stats([0.0, 0.0, 0.0])["ci"] == (0.0, 0.0)
    assert paired_stats([])["mean"] is None


def test_only_seeds_with_every_config_are_compared() -> None:
    results = [{"config": c, "seed": s} for s, cs in ((0, "ab"), (1, "a"), (2, "ba")) for c in cs]
    assert sorted({r["seed"] for r in complete_seeds(results)}) == [0, 2]
