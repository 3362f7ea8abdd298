"""Cascades in the real sandbox: OpenEvolve's semantics (stages merge, the first stage below its
threshold ends the cascade and the program is scored by what it has) and hard gates.

The fixtures in tests/fixtures/openevolve_style/ are ours, written in OpenEvolve's style; their
metrics were checked against OpenEvolve 0.4.1's own evaluator (see docs/problems.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluators.evaluate import evaluate_job
from evaluators.jobs import EvalJob, EvalResult, FailureKind

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openevolve_style"
THREE = FIXTURES / "three_stages"


def level(n: int) -> str:
    """Returns a program of the three-stage fixture that reaches level n."""
    return f"def level():\n    return {n}\n"


def score(code: str, folder: Path = THREE, **job: object) -> EvalResult:
    """Returns the result of code scored by folder's evaluator in a fresh sandbox."""
    fields: dict = {"cascade_thresholds": [0.5, 0.75], "score_fallback_mean": True,
                    "timeout_s": 20, **job}
    return evaluate_job(EvalJob(code=code, problem_dir=str(folder), evaluator_file="evaluator.py",
                                **fields))


@pytest.mark.parametrize("prefork", [False, True], ids=["fresh", "prefork"])
def test_a_program_past_every_threshold_gets_the_merged_metrics_of_all_three_stages(
        prefork: bool) -> None:
    result = score(level(3), prefork=prefork)
    assert result.ok and result.score == 0.95 and result.stage == 3
    assert result.metrics == {"combined_score": 0.95, "s1": 1.0, "s2": 2.0, "s3": 3.0}
    assert [(r["stage"], r["passed"]) for r in result.stages] == [(1, True), (2, True), (3, None)]


@pytest.mark.parametrize(("n", "stopped", "metrics"), [
    (0, 1, {"combined_score": 0.3, "s1": 1.0, "error": 0.0}),  # stage 1's own metrics, as given
    (1, 2, {"combined_score": 0.7, "s1": 1.0, "s2": 2.0}),     # merged: the `error` flag dropped
    (2, 3, {"combined_score": 0.85, "s1": 1.0, "s2": 2.0, "s3": 3.0}),
])
def test_a_program_stopped_at_a_stage_is_scored_by_the_stages_it_ran(
        n: int, stopped: int, metrics: dict[str, float]) -> None:
    result = score(level(n))
    assert result.ok and result.error is None and result.stage == stopped
    assert result.metrics == metrics and result.score == metrics["combined_score"]
    if stopped < 3:
        last = result.stages[-1]
        assert last["passed"] is False and last["value"] == metrics["combined_score"]
        assert last["threshold"] == [0.5, 0.75][stopped - 1]


def test_a_later_stage_that_raises_keeps_the_stages_before_it_marked_not_passed() -> None:
    result = score(level(-3))
    assert result.ok and result.score == 0.8
    assert result.metrics == {"combined_score": 0.8, "s1": 1.0, "s2": 2.0, "stage3_passed": 0.0}
    assert "stage 3 cannot handle this program" in result.artifacts["stage3_stderr"]
    assert "ValueError" in result.artifacts["stage3_traceback"]
    assert result.artifacts["failure_stage"] == "stage3"
    assert "ValueError" in result.stages[-1]["error"]


def test_a_first_stage_that_raises_is_a_failure_with_its_traceback() -> None:
    result = score("def level():\n    raise KeyError('no level')\n")
    assert result.error_kind == FailureKind.EXCEPTION and result.stage == 1
    assert "evaluate_stage1() raised KeyError" in result.error
    assert "Traceback" in result.artifacts["traceback"]


def test_a_stage_without_a_threshold_ends_the_cascade() -> None:
    result = score(level(3), cascade_thresholds=[0.5])  # OpenEvolve needs a 2nd for stage 3
    assert result.ok and result.stage == 2 and result.score == 0.8 and "s3" not in result.metrics


def test_without_thresholds_or_stage_functions_evaluate_scores_the_program(tmp_path: Path) -> None:
    assert score(level(0), cascade_thresholds=[]).score == 100.0
    (tmp_path / "evaluator.py").write_text("def evaluate(path):\n"
                                           "    return {'combined_score': 4}\n")
    assert score(level(0), tmp_path).score == 4.0


def test_the_value_compared_is_combined_score_else_the_mean_without_error(tmp_path: Path) -> None:
    (tmp_path / "evaluator.py").write_text(
        "def evaluate_stage1(path):\n    return {'a': 0.4, 'b': 0.8, 'error': 0.0}\n"
        "def evaluate_stage2(path):\n    return {'c': 1.0}\n"
        "def evaluate(path):\n    return {'a': 0.0}\n")
    result = score(level(0), tmp_path, cascade_thresholds=[0.6])
    first = result.stages[0]
    assert first["compared"] == "mean of the metrics" and first["value"] == pytest.approx(0.6)
    assert first["passed"] and result.metrics == {"a": 0.4, "b": 0.8, "c": 1.0}


def test_a_native_stop_without_the_score_metric_is_a_missing_score_naming_the_stage(
        tmp_path: Path) -> None:
    (tmp_path / "evaluator.py").write_text(
        "def evaluate_stage1(path):\n    return {'quick': 0.1}\n"
        "def evaluate(path):\n    return {'combined_score': 1.0}\n")
    result = score(level(0), tmp_path, cascade_thresholds=[0.5], score_fallback_mean=False)
    assert result.error_kind == FailureKind.MISSING_SCORE and result.stage == 1
    assert "the cascade ended at stage 1" in result.error and "'combined_score'" in result.error


def test_a_missed_gate_fails_the_program_and_past_gate_scores_it_by_the_missed_value() -> None:
    result = score(level(1), cascade_gates=True)
    assert result.error_kind == FailureKind.CASCADE and result.stage == 2
    assert "cascade gate 2 scored 0.7 (combined_score), below its threshold 0.75" in result.error
    assert result.metrics == {"combined_score": 0.7, "s2": 2.0}  # a gate keeps its own metrics
    kept = result.past_gate()
    assert kept is not None and kept.ok and kept.score == 0.7
    assert "missed cascade gate 2 (0.7 < 0.75)" in kept.artifacts["cascade_gate"]


def test_past_every_gate_evaluate_scores_the_program() -> None:
    result = score(level(3), cascade_gates=True)
    assert result.ok and result.score == 100.0 and result.stage == 0
    assert [r["passed"] for r in result.stages] == [True, True, None]


def test_an_error_the_evaluator_reports_is_kept_and_named() -> None:
    reported = score(level(0), FIXTURES / "reports_error", cascade_thresholds=[])
    assert reported.ok and reported.score == 0.0
    assert reported.reported_error == "No module named 'quantum_widgets_not_installed'"
    result = EvalResult(status="ok", score=0.0, artifacts={
        "error_type": "MissingFunction", "error_message": "no run_search function"})
    assert result.reported_error == "MissingFunction: no run_search function"
    assert EvalResult(status="ok", artifacts={"error": "  "}).reported_error is None
