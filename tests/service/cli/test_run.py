"""The `evoforge` command as a user runs it: real processes, real databases, the real sandbox."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from evaluators.isolation.layers import RUN_VAR
from service.db import Database
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow
from tests.conftest import REPO
from tests.service.engine_helpers import invalid_above_ten, returns, tiny_problem

EVOFORGE = [sys.executable, "-m", "service.cli"]


def evoforge(*args: str, home: Path, timeout: float = 300, check: bool = True
             ) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVOFORGE_HOME": str(home), "COLUMNS": "200"}
    proc = subprocess.run([*EVOFORGE, *args], capture_output=True, text=True, env=env, check=False,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"evoforge {args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def scripted(tmp_path: Path, values: list[object]) -> Path:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps([returns(v) for v in values]))
    return path


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_run_json_then_list_best_and_export(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    answers = scripted(tmp_path, [4, 9, 11, 6])
    proc = evoforge("run", str(folder), "--iterations", "4", "--llm", "scripted", "--model",
                    str(answers), "--seed", "3", "--json", home=tmp_path / "home")
    summary = last_json(proc.stdout)
    assert summary["run_id"] == 1 and summary["iterations"] == 4
    assert summary["initial_score"] == -9.0 and summary["best_score"] == -1.0
    assert summary["evaluations"] == 5 and summary["failed"] == 0
    assert Path(summary["best_path"]).read_text().count("return 9") == 1
    listing = evoforge("runs", "list", "--json", home=tmp_path / "home").stdout
    assert last_json(listing)["problem"] == "tiny" and last_json(listing)["status"] == "completed"
    table = evoforge("runs", "list", home=tmp_path / "home").stdout
    assert "tiny" in table and "completed" in table
    out = tmp_path / "best.py"
    evoforge("best", "1", "--out", str(out), home=tmp_path / "home")
    assert "return 9" in out.read_text()
    lines = evoforge("export", "1", home=tmp_path / "home").stdout.strip().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 5 and rows[0]["kind"] == "initial"
    child = rows[1]
    assert child["parent_id"] == rows[0]["id"] and child["completion"].startswith("Here is")
    assert child["prompt"][0]["role"] == "system" and child["island"] in (0, 1)
    assert {"generation", "metrics", "code"} <= set(child)


def test_the_summary_counts_children_the_evaluator_marked_invalid(tmp_path: Path) -> None:
    folder = invalid_above_ten(tiny_problem(tmp_path / "tiny"))
    answers = scripted(tmp_path, [10.5, 4, 12])
    args = ("run", str(folder), "--iterations", "3", "--llm", "scripted", "--model", str(answers))
    proc = evoforge(*args, "--json", home=tmp_path / "home")
    summary = last_json(proc.stdout)
    assert summary["invalid"] == 2 and summary["best_score"] == -6.0  # 10.5 scores -0.5
    assert "2 scored children were marked invalid by the evaluator" in proc.stdout


def test_run_config_file_and_unknown_key(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    bad = tmp_path / "RUN.toml"
    bad.write_text("[budget]\niteratons = 3\n")
    proc = evoforge("run", str(folder), "--config", str(bad), home=tmp_path, check=False)
    assert proc.returncode == 1
    assert "unknown key 'budget.iteratons'" in proc.stderr and "Traceback" not in proc.stderr
    missing = evoforge("run", str(folder), "--config", str(tmp_path / "nope.toml"), home=tmp_path,
                       check=False)
    assert missing.returncode == 1 and "nope.toml: file not found" in missing.stderr


def test_postgres_run_needs_upgrade_then_works(pg_url: str, tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    answers = scripted(tmp_path, [4, 9])
    args = ("run", str(folder), "--iterations", "2", "--llm", "scripted", "--model", str(answers),
            "--db", pg_url, "--json")
    refused = evoforge(*args, home=tmp_path, check=False)
    assert refused.returncode == 1 and "evoforge db upgrade" in refused.stderr
    evoforge("db", "upgrade", "--db", pg_url, home=tmp_path)
    summary = last_json(evoforge(*args, home=tmp_path).stdout)
    assert summary["best_score"] == -1.0 and summary["evaluations"] == 3


def test_killed_run_resumes_with_nothing_lost_or_duplicated(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    slow = (folder / "evaluator.py").read_text().replace(
        "    v = float", "    import time\n    time.sleep(0.3)\n    v = float")
    (folder / "evaluator.py").write_text(slow)
    answers = scripted(tmp_path, list(range(60)))
    home = tmp_path / "home"
    env = {**os.environ, "EVOFORGE_HOME": str(home)}
    proc = subprocess.Popen([*EVOFORGE, "run", str(folder), "--iterations", "30", "--llm",
                             "scripted", "--model", str(answers)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_url = f"sqlite:///{home / 'evoforge.db'}"
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.5)
        if (home / "evoforge.db").exists():
            db = Database(db_url)
            with db.session() as s:
                done = s.scalar(select(func.count()).select_from(ProgramRow)
                                .where(ProgramRow.status == "ok"))
            db.close()
            if done >= 8:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    db = Database(db_url)
    with db.session() as s:
        before = s.scalar(select(func.count()).select_from(ProgramRow))
        pending = s.scalar(select(func.count()).select_from(ProgramRow).where(
            ProgramRow.status.in_(("pending", "evaluating"))))
    assert 8 < before < 31 and pending > 0  # killed mid-run with evaluations in flight
    summary = last_json(evoforge("resume", "1", "--json", home=home).stdout)
    assert summary["iterations"] == 30
    with db.session() as s:
        programs = s.scalars(select(ProgramRow)).all()
        samples = s.scalar(select(func.count()).select_from(LLMSampleRow))
        finished = s.execute(select(EvaluationRow.program_id, func.count())
                             .where(EvaluationRow.status.in_(("ok", "failed")))
                             .group_by(EvaluationRow.program_id)).all()
    assert samples == 30
    assert all(p.status in ("ok", "failed", "duplicate") for p in programs)
    assert all(n == 1 for _, n in finished)  # every program scored exactly once
    evaluated = [p.code_hash for p in programs if p.status in ("ok", "failed")
                 and p.kind != "migrant"]
    assert len(evaluated) == len(set(evaluated))
    assert summary["evaluations"] == len(evaluated)


def test_eval_prints_metrics_and_failure(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    good = evoforge("eval", str(folder), str(folder / "initial_program.py"), "--json",
                    home=tmp_path)
    assert last_json(good.stdout)["score"] == -9.0
    bad = tmp_path / "bad.py"
    bad.write_text("def value():\n    while True:\n        pass\n")
    toml = folder / "problem.toml"
    toml.write_text(toml.read_text().replace("timeout_s = 10", "timeout_s = 2"))
    proc = evoforge("eval", str(folder), str(bad), home=tmp_path, check=False)
    assert proc.returncode == 1 and "timeout" in proc.stdout


def test_eval_scores_a_folder_program_and_names_its_files(tmp_path: Path) -> None:
    seed = REPO / "problems" / "bin_packing_files" / "initial_program"
    shown = evoforge("eval", "bin_packing_files", str(seed), home=tmp_path).stdout
    assert "(a folder of 3 files: order.py, pack.py, place.py)" in shown
    assert "score: 0.914876" in shown and "t501 (501 items" in shown
    broken = shutil.copytree(seed, tmp_path / "broken")
    (broken / "order.py").write_text((broken / "order.py").read_text().replace(
        "return sorted(", "return [0] + sorted("))
    proc = evoforge("eval", "bin_packing_files", str(broken), "--json", home=tmp_path,
                    check=False)
    failed = last_json(proc.stdout)
    assert failed["score"] == 0.0 and "not a permutation" in failed["artifacts"]["feedback"]
    assert failed["files"] == ["order.py", "pack.py", "place.py"]
    single = evoforge("eval", "bin_packing_files", str(seed / "order.py"), home=tmp_path,
                      check=False)
    assert single.returncode == 1 and "one file, but the programs of bin_packing_files are a " \
        "folder, initial_program/" in " ".join(single.stderr.split())


def test_ctrl_c_pauses_at_once_and_resume_finishes(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    slow = (folder / "evaluator.py").read_text().replace(
        "    v = float", "    import time\n    if 'return 1\\n' not in open(program_path).read():\n"
        "        time.sleep(30)\n    v = float")
    (folder / "evaluator.py").write_text(slow)
    home = tmp_path / "home"
    env = {**os.environ, "EVOFORGE_HOME": str(home)}
    # an ignored SIGINT is inherited, and Python then installs no KeyboardInterrupt: some library
    # in the suite's process leaves it ignored (the run then finished instead of pausing)
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # the child starts with the default SIGINT, as from a terminal
        proc = subprocess.Popen([*EVOFORGE, "run", str(folder), "--iterations", "3", "--llm",
                                 "scripted", "--model", str(scripted(tmp_path, [5, 6, 7]))],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, ignored)
    db_url = f"sqlite:///{home / 'evoforge.db'}"
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until the 30 s evaluations are running
        time.sleep(0.3)
        if (home / "evoforge.db").exists():
            db = Database(db_url)
            with db.session() as s:
                queued = s.scalar(select(func.count()).select_from(EvaluationRow)
                                  .where(EvaluationRow.status == "queued"))
            db.close()
            if queued >= 2:
                time.sleep(1.0)  # both slots are evaluating a 30 s program now
                break
    assert runner_processes(proc.pid)  # the slow evaluations are running
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert time.time() - sent < 10  # the sleeping evaluations were killed, not waited for
    assert proc.returncode == 130 and "evoforge resume 1" in stderr
    summary = json.loads(evoforge("runs", "list", "--json", home=home).stdout.splitlines()[0])
    assert summary["status"] == "paused"
    assert not runner_processes(proc.pid)


def runner_processes(controller: int) -> list[int]:
    """Returns the pids of the evaluation processes a controller started that are still alive
    (they carry EVOFORGE_SANDBOX_RUN=<controller pid>-...; other tests' are not counted)."""
    marker = f"{RUN_VAR}={controller}-".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ:
                pids.append(int(entry.name))
    return pids


OPENEVOLVE_EVALUATOR = '''import importlib.util

from openevolve.evaluation_result import EvaluationResult


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    v = float(mod.value())
    return EvaluationResult(metrics={"combined_score": -abs(v - 10.0)},
                            artifacts={"feedback": f"value() returned {v}"})
'''


def test_openevolve_example_folder_runs_unchanged(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "oe")
    (folder / "problem.toml").unlink()
    (folder / "evaluator.py").write_text(OPENEVOLVE_EVALUATOR)
    (folder / "config.yaml").write_text(
        "max_iterations: 3\nrandom_seed: 7\ndiff_based_evolution: false\n"
        "prompt:\n  system_message: You write Python.\n"
        "llm:\n  api_base: https://api.openai.com/v1\n  temperature: 0.5\n")
    home = tmp_path / "home"
    proc = evoforge("run", str(folder), "--llm", "scripted", "--model",
                    str(scripted(tmp_path, [7, 12, 9])), "--json", home=home)
    summary = last_json(proc.stdout)
    assert summary["iterations"] == 3 and summary["best_score"] == -1.0
    assert "ignored" in proc.stderr  # the config's LLM endpoint is not used
    rows = [json.loads(x) for x in evoforge("export", "1", home=home).stdout.splitlines()]
    assert rows[1]["prompt"][0]["content"] == "You write Python."
    assert rows[0]["artifacts"]["feedback"] == "value() returned 1.0"


def test_a_run_of_several_folder_seeds_reports_each_and_writes_the_best_folder(
        tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[3] / "problems" / "quickstart_files"
    folder = tmp_path / "seeded"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("initial_program"))
    for name, bend in (("a", "0.3 * x * x"), ("b", "0.9 * x * x")):
        shutil.copytree(source / "initial_program", folder / "initial_programs" / name)
        path = folder / "initial_programs" / name / "bend.py"
        path.write_text(path.read_text().replace("0.3 * x * x", bend))
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(["line.py\n```python\ndef line(x):\n    return x + 1.0\n```\n"]))
    proc = evoforge("run", str(folder), "--iterations", "2", "--llm", "scripted", "--model",
                    str(answers), "--json", home=tmp_path / "home")
    summary = last_json(proc.stdout)
    starts = summary["starting_programs"]
    assert [s["island"] for s in starts] == [0, 0] and all(s["score"] > 0 for s in starts)
    assert summary["initial_score"] == max(s["score"] for s in starts)
    assert "2 starting programs: #1 (island 0)" in proc.stdout
    best = Path(summary["best_path"])
    assert best.is_dir() and (best / "line.py").is_file() and (best / "curve.py").is_file()
    out = tmp_path / "mine"
    evoforge("best", "1", "--out", str(out), home=tmp_path / "home")
    assert sorted(p.name for p in out.glob("*.py")) == ["bend.py", "curve.py", "line.py"]
