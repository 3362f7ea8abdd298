"""The evaluation harness (the child side) in real processes: results, cascade gates, validation,
errors, check mode, and its command line (OpenEvolve's cascade:
tests/evaluators/test_cascade.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

from evaluators import harness
from evaluators.fresh import evaluate_fresh
from evaluators.harness import ARTIFACT_CHARS
from evaluators.jobs import EvalJob, EvalResult, FailureKind

PROGRAM = "def solve():\n    return 2.0\n"
LOAD = """
import importlib.util

def load(path):
    spec = importlib.util.spec_from_file_location("candidate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
"""


def run(tmp_path: Path, evaluator: str, program: str = PROGRAM, *,
        helpers: dict[str, str] | None = None, check: bool = False, **job: object) -> EvalResult:
    """Returns the result of evaluating program with an evaluator written into tmp_path/problem."""
    folder = tmp_path / "problem"
    folder.mkdir(exist_ok=True)
    (folder / "evaluator.py").write_text(LOAD + textwrap.dedent(evaluator))
    for name, text in (helpers or {}).items():
        (folder / name).write_text(textwrap.dedent(text))
    eval_job = EvalJob(code=program, problem_dir=str(folder),
                       evaluator_file=str(folder / "evaluator.py"), timeout_s=20, **job)
    return evaluate_fresh(eval_job, check=check)


def test_dict_result_gives_metrics_score_and_output_artifacts(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            print("hello from the evaluator")
            return {"combined_score": load(program_path).solve(), "size": 3, "valid": True}
    """)
    assert result.ok and result.score == 2.0 and result.error is None
    assert result.metrics == {"combined_score": 2.0, "size": 3.0, "valid": 1.0}
    assert "hello from the evaluator" in result.artifacts["stdout"]
    assert result.artifacts["stderr"] == "" and result.duration_s > 0


def test_object_result_with_metrics_and_artifacts_is_accepted(tmp_path: Path) -> None:
    result = run(tmp_path, """
        import numpy as np

        class Result:
            def __init__(self, metrics, artifacts):
                self.metrics, self.artifacts = metrics, artifacts

        def evaluate(program_path):
            metrics = {"combined_score": np.float32(0.5), "n": np.int64(4), "ok": np.bool_(True)}
            return Result(metrics, {"feedback": "try a larger step", "raw": b"bytes"})
    """)
    assert result.ok and result.score == 0.5
    assert result.metrics == {"combined_score": 0.5, "n": 4.0, "ok": 1.0}
    assert result.artifacts["feedback"] == "try a larger step"
    assert result.artifacts["raw"] == "bytes"


def test_a_dict_of_metrics_and_artifacts_is_read_as_those_two(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):  # as OpenEvolve's k_module_problem example returns
            return {"metrics": {"combined_score": 0.25, "correct_modules": 1},
                    "artifacts": {"error": "validation failed", "status": "ERROR"}}
    """)
    assert result.ok and result.score == 0.25
    assert result.metrics == {"combined_score": 0.25, "correct_modules": 1.0}
    assert result.artifacts["error"] == "validation failed"
    alone = run(tmp_path, """
        def evaluate(program_path):
            return {"metrics": {"combined_score": 0.5}}
    """)
    assert alone.ok and alone.score == 0.5 and "metrics_note" not in alone.artifacts
    mixed = run(tmp_path, """
        def evaluate(program_path):  # any other key: a plain dict of metrics, as before
            return {"metrics": {"combined_score": 0.5}, "combined_score": 0.75}
    """)
    assert mixed.score == 0.75 and "metrics (dict)" in mixed.artifacts["metrics_note"]
    beside = run(tmp_path, """
        def evaluate(program_path):  # artifacts beside the metrics, as k_module_problem's success
            return {"combined_score": 0.5, "artifacts": {"status": "2/4 modules correct"}}
    """)
    assert beside.metrics == {"combined_score": 0.5} and "metrics_note" not in beside.artifacts
    assert beside.artifacts["status"] == "2/4 modules correct"


def test_non_numeric_metric_values_move_to_artifacts_with_a_note(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            return {"combined_score": 1.0, "comment": "fine", "shape": [3, 4]}
    """)
    assert result.ok and result.metrics == {"combined_score": 1.0}
    assert result.artifacts["comment"] == "fine" and result.artifacts["shape"] == [3, 4]
    assert "comment (str)" in result.artifacts["metrics_note"]


def test_a_gate_below_its_threshold_is_a_cascade_failure_keeping_stage_metrics(
        tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate_stage1(program_path):
            return {"combined_score": 0.2, "quick": 1.0}

        def evaluate(program_path):
            raise RuntimeError("evaluate() must not run after a failed gate")
    """, cascade_thresholds=[0.5], cascade_gates=True)
    assert result.error_kind == "cascade" and result.stage == 1
    assert result.metrics == {"combined_score": 0.2, "quick": 1.0}
    assert "gate 1 scored 0.2 (combined_score), below its threshold 0.5" in result.error


def test_past_every_gate_evaluate_gives_the_final_score(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate_stage1(program_path):
            return {"combined_score": 0.9}

        def evaluate(program_path):
            return {"combined_score": load(program_path).solve() + 10}
    """, cascade_thresholds=[0.5, 0.8], cascade_gates=True)
    assert result.ok and result.score == 12.0 and result.stage == 0
    assert [r["passed"] for r in result.stages] == [True]


def test_second_gate_uses_the_mean_when_no_score_metric_is_given(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate_stage1(program_path):
            return {"a": 1.0}

        def evaluate_stage2(program_path):
            return {"a": 0.2, "b": 0.4}

        def evaluate(program_path):
            return {"combined_score": 1.0}
    """, cascade_thresholds=[0.5, 0.5], cascade_gates=True)
    assert result.error_kind == "cascade" and result.stage == 2
    assert "0.3 (mean of the metrics)" in result.error


def test_stages_do_not_run_without_thresholds(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate_stage1(program_path):
            raise RuntimeError("stage 1 ran")

        def evaluate(program_path):
            return {"combined_score": 1.0}
    """)
    assert result.ok and result.score == 1.0


def test_non_finite_metric_is_invalid_and_named(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            return {"combined_score": 1.0, "loss": float("inf")}
    """)
    assert result.error_kind == "invalid_metrics"
    assert "loss = inf" in result.error and "finite number" in result.error


def test_wrong_return_type_says_what_came_back_and_what_is_expected(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            return 0.7
    """)
    assert result.error_kind == "invalid_metrics"
    assert "evaluate() returned float; expected a dict of metrics" in result.error


def test_missing_score_names_the_metric_and_the_keys_returned(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            return {"accuracy": 0.9, "speed": 2.0}
    """, score_metric="fitness")
    assert result.error_kind == "missing_score"
    assert result.metrics == {"accuracy": 0.9, "speed": 2.0}
    assert "no 'fitness' metric (it returned: accuracy, speed)" in result.error
    assert "set score_metric in problem.toml" in result.error


def test_fallback_mean_scores_when_the_metric_is_absent(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            return {"accuracy": 0.9, "speed": 2.1, "note": "text is not averaged"}
    """, score_fallback_mean=True)
    assert result.ok and abs(result.score - 1.5) < 1e-12


def test_non_numeric_score_metric_is_invalid(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            return {"combined_score": "high"}
    """)
    assert result.error_kind == "invalid_metrics" and "combined_score = 'high'" in result.error


def test_evaluator_import_error_names_the_file_and_the_fix(tmp_path: Path) -> None:
    result = run(tmp_path, """
        import no_such_module_for_evoforge

        def evaluate(program_path):
            return {}
    """)
    assert result.error_kind == "evaluator"
    assert str(tmp_path / "problem" / "evaluator.py") in result.error
    assert "No module named 'no_such_module_for_evoforge' at evaluator.py:" in result.error
    assert "fix the evaluator file" in result.error


def test_evaluator_without_evaluate_is_reported(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def score(program_path):
            return {}
    """)
    assert result.error_kind == "evaluator" and "defines no evaluate(program_path)" in result.error


def test_exception_in_the_program_gives_last_line_where_and_a_traceback_without_evoforge(
        tmp_path: Path) -> None:
    program = "def solve():\n    values = []\n    return values[3]\n"
    result = run(tmp_path, """
        def evaluate(program_path):
            return {"combined_score": load(program_path).solve()}
    """, program)
    assert result.error_kind == "exception"
    assert result.error == ("evaluate() raised IndexError: list index out of range "
                            "at program.py:3 (in solve)")
    trace = result.artifacts["traceback"]
    assert 'File "program.py", line 3, in solve' in trace and "evaluators" not in trace


def test_syntax_error_in_the_program_points_at_its_line(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            return {"combined_score": load(program_path).solve()}
    """, "def solve(:\n    return 1\n")
    assert result.error_kind == "exception" and "SyntaxError" in result.error
    assert "at program.py:1" in result.error


def test_helper_modules_next_to_the_evaluator_are_importable(tmp_path: Path) -> None:
    result = run(tmp_path, """
        from scoring import bonus

        def evaluate(program_path):
            return {"combined_score": load(program_path).solve() + bonus()}
    """, helpers={"scoring.py": "def bonus():\n    return 0.5\n"})
    assert result.ok and result.score == 2.5


def test_large_artifacts_are_cut_with_a_marker(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            return {"combined_score": 1.0, "log": "x" * 200_000}
    """)
    assert result.ok and len(result.artifacts["log"]) < ARTIFACT_CHARS + 100
    assert "characters dropped" in result.artifacts["log"]


def test_check_mode_loads_the_evaluator_without_running_it(tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate_stage1(program_path):
            return {}

        def evaluate(program_path):
            raise RuntimeError("not in check mode")
    """, check=True)
    assert result.ok and result.artifacts["entry_points"] == "evaluate, evaluate_stage1"


def test_the_child_command_writes_the_result_file_in_its_work_dir(tmp_path: Path) -> None:
    folder, work = tmp_path / "problem", tmp_path / "work"
    folder.mkdir()
    work.mkdir()
    (folder / "evaluator.py").write_text(LOAD + textwrap.dedent("""
        def evaluate(program_path):
            print("scored")
            return {"combined_score": load(program_path).solve()}
    """))
    job = EvalJob(code=PROGRAM, problem_dir=str(folder), evaluator_file="evaluator.py")
    (tmp_path / "job.json").write_text(json.dumps(job.to_dict()))
    for args, expected in (([], {"score": 2.0}), (["--check"], {"score": None})):
        done = subprocess.run([sys.executable, "-s", "-P", "-m", "evaluators.harness", *args,
                               str(tmp_path / "job.json"), str(tmp_path / "result.json")],
                              cwd=work, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        written = json.loads((tmp_path / "result.json").read_text())
        assert written["status"] == "ok" and written["score"] == expected["score"]
    assert (work / "program.py").read_text() == PROGRAM
    assert not (tmp_path / "result.json.tmp").exists()


def test_an_evaluator_already_imported_is_used_without_importing_the_file(tmp_path: Path) -> None:
    job = EvalJob(code=PROGRAM, problem_dir=str(tmp_path), evaluator_file="no_such_file.py",
                  cascade_thresholds=[0.5], cascade_gates=True)

    def evaluate(program_path: str) -> dict[str, float]:
        raise AssertionError("the gate must stop the cascade")

    preloaded = types.ModuleType("preloaded")  # what a fork server holds: imported once
    preloaded.evaluate_stage1 = lambda program_path: {"combined_score": 0.1}
    preloaded.evaluate = evaluate
    result = harness.score(job, tmp_path / "program.py", preloaded)
    assert result.error_kind is FailureKind.CASCADE and result.stage == 1
    assert result.metrics == {"combined_score": 0.1} and result.duration_s >= 0
    assert harness.check_evaluator(job).error_kind is FailureKind.EVALUATOR


def test_failure_kinds_survive_the_result_file_as_members_equal_to_their_strings(
        tmp_path: Path) -> None:
    result = run(tmp_path, """
        def evaluate(program_path):
            return {"accuracy": 0.9}
    """)
    assert result.error_kind is FailureKind.MISSING_SCORE and result.error_kind == "missing_score"
    assert json.loads(json.dumps(result.to_dict()))["error_kind"] == "missing_score"
