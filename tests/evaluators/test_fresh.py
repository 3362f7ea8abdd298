"""A fresh sandboxed process per evaluation, host side: its work dir, its environment, its result
file, and the words for a process that died without one."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from evaluators import fresh
from evaluators.harness import SEED_VAR
from evaluators.isolation.sandbox import SandboxOutcome
from evaluators.jobs import EvalJob, EvalResult, FailureKind


def job_for(tmp_path: Path, evaluator: str, **fields: object) -> EvalJob:
    """Returns a job whose evaluator (written into tmp_path/problem) ignores the program."""
    folder = tmp_path / "problem"
    folder.mkdir(exist_ok=True)
    (folder / "evaluator.py").write_text(textwrap.dedent(evaluator))
    return EvalJob(code="x = 1\n", problem_dir=str(folder), evaluator_file="evaluator.py",
                   timeout_s=20, **fields)


def outcome(**fields: object) -> SandboxOutcome:
    """Returns how a process ended: by default, exit code 1 and nothing printed."""
    base = {"returncode": 1, "signal": None, "timed_out": False, "stdout": "", "stderr": "",
            "duration_s": 0.5, "timeout_s": 3.0}
    return SandboxOutcome(**{**base, **fields})


def test_each_evaluation_gets_its_own_work_dir_removed_after_it_and_a_fixed_hash_seed(
        tmp_path: Path) -> None:
    job = job_for(tmp_path, """
        import os

        def evaluate(program_path):
            return {"combined_score": 1.0, "hash": hash("evoforge") % 100_000, "work": os.getcwd()}
    """)
    first, second = fresh.evaluate_fresh(job), fresh.evaluate_fresh(job)
    assert first.ok and second.ok and first.metrics["hash"] == second.metrics["hash"]
    assert first.artifacts["work"] != second.artifacts["work"]
    assert not Path(first.artifacts["work"]).exists()
    assert not (tmp_path / "problem" / "__pycache__").exists()


def test_the_child_sees_the_jobs_seed_and_the_job_file_next_to_its_work_dir(
        tmp_path: Path) -> None:
    job = job_for(tmp_path, f"""
        import json, os
        from pathlib import Path

        def evaluate(program_path):
            sent = json.loads((Path.cwd().parent / "job.json").read_text())
            return {{"combined_score": float(os.environ["{SEED_VAR}"]), "seed_sent": sent["seed"]}}
    """, seed=7)
    result = fresh.evaluate_fresh(job)
    assert result.ok and result.score == 7.0 and result.metrics["seed_sent"] == 7.0, result.error


def test_the_output_tails_and_the_duration_come_from_the_process(tmp_path: Path) -> None:
    job = job_for(tmp_path, """
        import sys

        def evaluate(program_path):
            print("o" * 20_000)
            print("to stderr", file=sys.stderr)
            return {"combined_score": 1.0}
    """)
    result = fresh.evaluate_fresh(job)
    assert result.ok and result.duration_s > 0
    assert "characters dropped" in result.artifacts["stdout"]
    assert result.artifacts["stdout"].endswith("o\n") and len(result.artifacts["stdout"]) < 9000
    assert result.artifacts["stderr"] == "to stderr\n"


def test_a_result_file_that_is_missing_or_malformed_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    assert fresh.read_result(path) is None
    for text in ("{", "not json", json.dumps({"no_status": 1}), "[]", "null", "3"):
        path.write_text(text)
        assert fresh.read_result(path) is None, text
    path.write_text(json.dumps(EvalResult.failure(FailureKind.OUTPUT, "too much").to_dict()))
    assert fresh.read_result(path).error_kind is FailureKind.OUTPUT


MEMORY_WORDS = ("ran out of memory (MemoryError) under the 256 MiB address-space limit; use less "
                "memory or raise evaluation.memory_mb")
SEGV_WORDS = ("the evaluation process was killed by SIGSEGV (segmentation fault) before writing "
              "a result; last stderr line: boom")
EXIT_0_WORDS = ("the evaluation process exited with code 0 before writing a result (os._exit() or "
                "sys.exit() in the program or evaluator?)")


@pytest.mark.parametrize(("how", "kind", "words"), [
    ({"timed_out": True, "returncode": -9, "signal": "SIGKILL"}, FailureKind.TIMEOUT,
     "exceeded 3 s wall clock; the process group was killed"),
    ({"stderr": "Traceback ...\nMemoryError\n"}, FailureKind.MEMORY, MEMORY_WORDS),
    ({"returncode": -24, "signal": "SIGXCPU"}, FailureKind.TIMEOUT,
     "killed by SIGXCPU (CPU time limit reached): used more than 4 s of CPU time"),
    ({"returncode": -11, "signal": "SIGSEGV", "stderr": "boom\n\n"}, FailureKind.CRASH, SEGV_WORDS),
    ({"returncode": 0}, FailureKind.CRASH, EXIT_0_WORDS),
    ({"returncode": 3}, FailureKind.CRASH,
     "the evaluation process exited with code 3 before writing a result"),
])
def test_a_process_that_ends_without_a_result_gets_a_failure_saying_how(
        how: dict[str, object], kind: FailureKind, words: str) -> None:
    job = EvalJob(code="", problem_dir="/nonexistent", evaluator_file="e.py", timeout_s=3,
                  memory_mb=256)
    failure = fresh.death_failure(outcome(**how), job)
    assert failure.error_kind is kind and failure.error == words
