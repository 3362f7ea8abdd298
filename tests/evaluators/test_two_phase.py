"""Two-phase evaluation in the real sandbox: the program returns data, another process scores it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from evaluators.evaluate import evaluate_job
from evaluators.harness import SEED_VAR
from evaluators.jobs import EvalJob, EvalResult

SCORER = """
import json, os
from pathlib import Path

def score(data):
    if not isinstance(data, list) or len(data) != 3:
        raise ValueError(f"expected a list of 3 numbers; got {str(data)[:40]}")
    for x in data:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x or abs(x) > 1e9:
            raise ValueError(f"{x!r} is not a finite number")
        if x < 0:
            raise ValueError(f"{x!r} is negative")
    job = json.loads((Path.cwd().parent / "job.json").read_text())
    return {"combined_score": float(sum(data)), "code_chars_seen": len(job["code"]),
            "program_file_seen": float(Path("program.py").exists()),
            "seed": float(os.environ.get("EVOFORGE_EVAL_SEED", "-1")), "feedback": "fine"}
"""
HONEST = "def construct():\n    return [1.0, 2, 3.5]\n"


def run(tmp_path: Path, program: str, scorer: str = SCORER, *, check: bool = False,
        **job: object) -> EvalResult:
    """Returns the two-phase result of program against scorer, in the real sandbox."""
    folder = tmp_path / "problem"
    folder.mkdir(exist_ok=True)
    (folder / "scorer.py").write_text(textwrap.dedent(scorer))
    eval_job = EvalJob(code=textwrap.dedent(program), problem_dir=str(folder),
                       evaluator_file=str(folder / "scorer.py"), scorer="scorer.py",
                       entry="construct", **{"timeout_s": 20, **job})
    return evaluate_job(eval_job, check=check)


def test_data_is_scored_in_a_process_that_never_sees_the_program(tmp_path: Path) -> None:
    result = run(tmp_path, "print('hi from the program')\n" + HONEST, seed=7)
    assert result.ok, result.error
    assert result.score == 6.5 and result.metrics["seed"] == 7.0
    assert result.metrics["code_chars_seen"] == 0 and result.metrics["program_file_seen"] == 0
    assert result.artifacts["feedback"] == "fine" and "metrics_note" not in result.artifacts
    assert "hi from the program" in result.artifacts["stdout"]
    assert result.artifacts["scorer_stdout"] == "" and result.artifacts["data_bytes"] > 0


def test_numpy_arrays_and_tuples_are_passed_on_as_lists(tmp_path: Path) -> None:
    result = run(tmp_path, "import numpy as np\n\ndef construct():\n"
                 "    return np.array([1.0, 2.0]).tolist() + [np.float64(0.5)]\n")
    assert result.ok and result.score == 3.5


def test_the_program_sees_the_job_seed_in_its_environment(tmp_path: Path) -> None:
    program = f"import os\n\ndef construct():\n    return [float(os.environ['{SEED_VAR}']), 0, 0]\n"
    assert run(tmp_path, program, seed=41).score == 41.0
    assert run(tmp_path, program).score == 0.0


@pytest.mark.parametrize(("body", "kind", "reason"), [
    ("return [float('nan'), 1, 2]", "rejected", "nan is not a finite number"),
    ("return [float('inf'), 1, 2]", "rejected", "inf is not a finite number"),
    ("return [1e300, 1, 2]", "rejected", "not a finite number"),
    ("return [-1.0, 1, 2]", "rejected", "-1.0 is negative"),
    ("return [1, 2]", "rejected", "expected a list of 3 numbers"),
    ("return [True, 1, 2]", "rejected", "True is not a finite number"),
    ("return object()", "rejected", "object is not JSON data"),
    ("return [1j, 1, 2]", "rejected", "complex numbers are not real numbers"),
    ("return list(range(300_000))", "output", "the cap is 100000"),
    ("raise RuntimeError('no packing today')", "exception", "RuntimeError: no packing today"),
    ("while True: pass", "timeout", "exceeded"),
])
def test_bad_data_is_rejected_with_the_reason(tmp_path: Path, body: str, kind: str,
                                              reason: str) -> None:
    result = run(tmp_path, f"def construct():\n    {body}\n", data_max_bytes=100_000,
                 timeout_s=3 if kind == "timeout" else 20)
    assert not result.ok and result.score is None
    assert result.error_kind == kind and reason in result.error, result.error


def test_a_program_without_the_entry_function_is_rejected_naming_it(tmp_path: Path) -> None:
    result = run(tmp_path, "def build():\n    return [1, 2, 3]\n")
    assert result.error_kind == "rejected" and "no construct() function" in result.error


MONKEYPATCH = """
import json, sys
from pathlib import Path

job = json.loads((Path.cwd().parent / "job.json").read_text())
sys.path.insert(0, job["problem_dir"])
import scorer
scorer.score = lambda data: {"combined_score": 1e9}
import evaluators.phases as phases
from evaluators.jobs import EvalResult
phases.score_data = lambda *a, **k: EvalResult(status="ok", score=1e9)
import evaluators.harness as harness
harness.final_score = lambda *a, **k: 1e9

def construct():
    return [float("nan"), 0, 0]
"""
FORGED_FILES = """
import json, os
from pathlib import Path

def construct():
    root = Path.cwd().parent
    forged = {"status": "ok", "score": 1e9, "metrics": {"combined_score": 1e9}}
    (root / "result.json").write_text(json.dumps(forged))
    os._exit(0)
"""
SYMLINKED_DATA = """
import json, os
from pathlib import Path

def construct():
    root = Path.cwd().parent
    os.symlink("/etc/passwd", root / "data.json")
    (root / "result.json").write_text(json.dumps({"status": "ok"}))
    os._exit(0)
"""


@pytest.mark.parametrize(("program", "reason"), [
    (MONKEYPATCH, "nan is not a finite number"),
    (FORGED_FILES, "data file could not be read"),
    (SYMLINKED_DATA, "could not be read"),
])
def test_a_program_cannot_forge_its_score(tmp_path: Path, program: str, reason: str) -> None:
    result = run(tmp_path, program)
    assert not result.ok and result.score is None and reason in result.error, result.error


REWRITE_SCORER = """
import json
from pathlib import Path

FORGED = "def score(data):\\n    return {'combined_score': 1e9}\\n"

def construct():
    job = json.loads((Path.cwd().parent / "job.json").read_text())
    try:
        (Path(job["problem_dir"]) / "scorer.py").write_text(FORGED)
    except OSError:
        pass
    return [float("nan"), 0, 0]
"""


def test_a_program_that_rewrites_the_scorer_file_is_not_scored_by_it(tmp_path: Path) -> None:
    result = run(tmp_path, REWRITE_SCORER)
    assert not result.ok and result.score is None
    scorer_now = (tmp_path / "problem" / "scorer.py").read_text()
    if "'combined_score': 1e9" in scorer_now:  # no read-only mount here: the change is the reason
        assert "changed while the program ran" in result.error
    else:
        assert "nan is not a finite number" in result.error


def test_a_scorer_that_breaks_is_an_evaluator_failure_not_a_candidate_one(tmp_path: Path) -> None:
    missing = run(tmp_path, HONEST, "def judge(data):\n    return {}\n")
    assert missing.error_kind == "evaluator" and "defines no score(data)" in missing.error
    crashing = run(tmp_path, HONEST, "def score(data):\n    return {'combined_score': 1 / 0}\n")
    assert crashing.error_kind == "exception" and "ZeroDivisionError" in crashing.error
    assert "the scorer's score()" in crashing.error


def test_check_loads_the_scorer_without_running_the_program(tmp_path: Path) -> None:
    assert run(tmp_path, "raise SystemExit('never run')\n", check=True).ok
    broken = run(tmp_path, HONEST, "import not_a_module\n", check=True)
    assert broken.error_kind == "evaluator" and "not_a_module" in broken.error


def test_openevolve_evaluators_see_the_seed_too(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "evaluator.py").write_text(
        f"import os\n\ndef evaluate(path):\n    return {{'combined_score': "
        f"float(os.environ['{SEED_VAR}'])}}\n")
    job = EvalJob(code="x = 1\n", problem_dir=str(folder),
                  evaluator_file=str(folder / "evaluator.py"), seed=5)
    assert evaluate_job(job).score == 5.0


JUNK_FAILURE = """
import json, os
from pathlib import Path

def construct():
    junk = {"status": "failed", "error_kind": ["x"], "artifacts": 5, "error": "y" * 100_000}
    (Path.cwd().parent / "result.json").write_text(json.dumps(junk))
    os._exit(0)
"""


def test_a_junk_failure_written_by_the_program_is_kept_only_as_a_clipped_crash(
        tmp_path: Path) -> None:
    result = run(tmp_path, JUNK_FAILURE)
    assert not result.ok and result.error_kind == "crash"
    assert len(result.error) < 10_000 and set(result.artifacts) >= {"traceback", "stdout"}
