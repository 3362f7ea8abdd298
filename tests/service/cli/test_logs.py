"""--log-format json (or EVOFORGE_LOG_FORMAT=json): a real `evoforge run` logs one JSON object a
line on stderr, each with time, level, component and message, and the run, program and
evaluation it concerns where one applies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.service.engine_helpers import returns, tiny_problem

EVOFORGE = [sys.executable, "-m", "service.cli"]


def _run(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([returns(v) for v in (4, "1/0", 9)]))
    return subprocess.run([*EVOFORGE, "run", str(tiny_problem(tmp_path / "tiny")), "--iterations",
                           "3", "--llm", "scripted", "--model", str(answers), "--json", *args],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "EVOFORGE_HOME": str(tmp_path / "home"), **env})


def test_run_logs_one_json_object_a_line_with_the_ids_that_apply(tmp_path: Path) -> None:
    done = _run(tmp_path, "-v", env={"EVOFORGE_LOG_FORMAT": "json"})
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]  # every line parses
    assert records and all({"time", "level", "component", "message"} <= set(r) for r in records)
    said = [r for r in records if r["component"] == "evoforge.cli"]
    assert said[0]["message"].startswith("run 1 on tiny")  # an announcement, markup removed
    failed = [r for r in records if r["message"].startswith("evaluation failed (exception)")]
    assert len(failed) == 1 and failed[0]["component"] == "evoforge.engine"
    assert failed[0]["run_id"] == 1 and failed[0]["program_id"] and failed[0]["evaluation_id"]
    assert "ZeroDivisionError" in failed[0]["message"]
    assert json.loads(done.stdout.splitlines()[-1])["failed"] == 1  # results stay on stdout


def test_an_unknown_log_format_is_refused_with_the_choices(tmp_path: Path) -> None:
    done = _run(tmp_path, "--log-format", "xml", env={})
    assert done.returncode == 2
    assert "xml" in done.stderr and "rich" in done.stderr and "json" in done.stderr
