"""The side-by-side harness and the suite runner, run for real with a tiny budget.

Both scripts start their own llama-cpp-python server on the embedded SmolLM2; the OpenEvolve side
runs in benchmarks/.venv-openevolve, which the harness creates when it is missing: that takes
~11 s from pip's cache (measured on this machine), so the test installs it rather than skipping.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from benchmarks.harness.curves import best_curve, time_curve
from benchmarks.harness.evoforge import llm_table
from benchmarks.peers.proxy import Call, busy_seconds, summarise, with_defaults
from benchmarks.quality.suite import gap
from service.problems.load import load_problem

REPO = Path(__file__).resolve().parents[2]


def _script(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Runs a benchmark module; past the timeout it gets SIGTERM, so it stops what it started."""
    proc = subprocess.Popen([sys.executable, "-m", name, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the scripts turn SIGTERM into SystemExit: server and runs are stopped
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"{name} ran past {timeout} s: {out[-2000:]} {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_vs_openevolve_runs_both_systems_on_one_meter(tmp_path: Path) -> None:
    proc = _script("benchmarks.peers.vs_openevolve", "--problems", "quickstart", "--seeds", "0",
                   "--calls", "2", "--out", str(tmp_path), "--name", "smoke")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads((tmp_path / "smoke.json").read_text())
    runs = {r["system"]: r for r in out["runs"]}
    assert set(runs) == {"evoforge", "openevolve"}
    evo, peer = runs["evoforge"], runs["openevolve"]
    # the proxy's count agrees with evoforge's own ledger, call for call and token for token
    assert evo["llm_calls"] == evo["own_llm_calls"] == 2
    assert evo["tokens"] == evo["own_tokens"] > 0
    assert peer["llm_calls"] >= 2 and peer["tokens"] > 0  # OpenEvolve may retry a failed call
    for r in (evo, peer):
        assert r["strict_status"] == "ok" and math.isfinite(r["best_strict"])
        assert r["best_strict"] >= r["initial_strict"]  # the initial program is in the population
        assert len(r["curve"]) == r["iterations"] + 1 == 3
        assert 0 < r["llm_busy_s"] <= r["wall_s"]
    summary = {s["system"]: s for s in out["summary"]}
    assert summary["openevolve"]["iter_overhead_ms_ratio"] == pytest.approx(1.0)
    assert summary["evoforge"]["iter_overhead_ms_ratio"] > 0
    assert (tmp_path / "smoke.png").stat().st_size > 10_000
    assert "| quickstart | openevolve | 0 |" in (tmp_path / "smoke.md").read_text()
    assert "summary" in proc.stdout and "evoforge" in proc.stdout


def test_suite_reports_strict_score_and_budget(tmp_path: Path) -> None:
    proc = _script("benchmarks.quality.suite", "--problems", "quickstart", "--calls", "2",
                   "--out", str(tmp_path), "--name", "suite")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [row] = json.loads((tmp_path / "suite.json").read_text())
    assert row["problem"] == "quickstart" and row["tier"] == "re-verified strict"
    assert row["best_strict"] >= row["initial"] > 0
    assert row["llm_calls"] == 2 and row["tokens"] > 0 and row["wall_s"] > 0
    assert row["gap"] is None  # quickstart states no best-known value
    assert "| quickstart | 0 |" in (tmp_path / "suite.md").read_text()


def test_suite_runs_the_embedded_backend_with_the_llm_keys_given(tmp_path: Path) -> None:
    proc = _script("benchmarks.quality.suite", "--problems", "quickstart", "--calls", "2",
                   "--embedded", "--llm", "close_code=false", "--llm", "max_tokens=128",
                   "--out", str(tmp_path), "--name", "emb")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [row] = json.loads((tmp_path / "emb.json").read_text())
    assert row["model"].startswith("embedded:") and row["llm_calls"] == 2
    assert row["tier"] == "re-verified strict"


def test_a_suite_llm_key_without_a_value_is_refused(tmp_path: Path) -> None:
    proc = _script("benchmarks.quality.suite", "--problems", "quickstart", "--embedded",
                   "--llm", "close_code", "--out", str(tmp_path))
    assert proc.returncode == 2 and "is not KEY=VALUE" in proc.stderr


def test_unknown_problem_is_refused_with_its_name(tmp_path: Path) -> None:
    proc = _script("benchmarks.peers.vs_openevolve", "--problems", "no_such_problem",
                   "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "no_such_problem" in proc.stderr and "problems/" in proc.stderr
    proc = _script("benchmarks.quality.suite", "--problems", "no_such_problem",
                   "--out", str(tmp_path))
    assert proc.returncode != 0 and "no_such_problem" in proc.stderr


def test_unknown_system_is_refused() -> None:
    proc = _script("benchmarks.peers.vs_openevolve", "--systems", "evoforge,shinka")
    assert proc.returncode == 2 and "shinka" in proc.stderr and "openevolve" in proc.stderr


def test_gap_to_best_known_follows_the_direction() -> None:
    circles = load_problem(REPO / "problems" / "circle_packing")
    assert gap(circles.best_known, circles) == 0
    assert gap(circles.best_known / 2, circles) == pytest.approx(0.5)
    assert gap(None, circles) is None
    minimise = circles.__class__(**{**circles.__dict__, "direction": "minimize",
                                    "best_known": 1.5})
    assert gap(1.65, minimise) == pytest.approx(0.1)
    assert gap(1.2, minimise) < 0  # beaten


def test_llm_busy_time_counts_overlapping_calls_once() -> None:
    calls = [Call("t", 0.0, 2.0, 200, 10, 5, "stop", "a"),
             Call("t", 1.0, 3.0, 200, 10, 5, "length", "a"),
             Call("t", 5.0, 6.0, 500)]
    assert busy_seconds(calls) == pytest.approx(4.0)
    s = summarise(calls)
    assert (s["llm_calls"], s["llm_ok"], s["tokens"], s["truncated"], s["distinct_completions"]) \
        == (3, 2, 30, 1, 1)


def test_best_curves_keep_the_best_so_far_in_the_problem_direction() -> None:
    points = [(0, 1.0), (2, 3.0), (2, 0.5), (3, 2.0), (4, None)]
    assert best_curve(points, 4, maximize=True) == [1.0, 1.0, 3.0, 3.0, 3.0]
    assert best_curve(points, 4, maximize=False) == [1.0, 1.0, 0.5, 0.5, 0.5]
    assert best_curve([], 2, maximize=True) == [None, None, None]
    assert time_curve([(2.0, 1.0), (1.0, 2.0), (3.0, 5.0)], maximize=True) == [[1.0, 2.0],
                                                                               [3.0, 5.0]]


def test_llm_settings_are_written_as_a_toml_table_the_cli_reads() -> None:
    llm = {"timeout_s": 600, "extra_body": {"repeat_penalty": 1.0, "stop": ["```", "\n\n"]},
           "system_message": 'say "hi"\n', "close_code": False}
    assert tomllib.loads(llm_table(llm)) == {"llm": llm}


def test_the_proxy_adds_its_default_fields_to_a_request_that_does_not_set_them() -> None:
    sent = json.dumps({"model": "m", "temperature": 0.7, "repeat_penalty": 1.3}).encode()
    assert json.loads(with_defaults(sent, {"repeat_penalty": 1.0, "top_k": 40})) == {
        "model": "m", "temperature": 0.7, "repeat_penalty": 1.3, "top_k": 40}
    assert with_defaults(b"not json", {"top_k": 40}) == b"not json"
    assert with_defaults(sent, {}) is sent
