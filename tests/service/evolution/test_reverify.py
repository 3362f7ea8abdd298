"""Re-verification of a run's best programs in a fresh sandbox, and the tier every score carries."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from service.config import build_run_config
from service.db import Database, upgrade
from service.db.models import ProgramRow
from service.evolution.reverify import reverify_run, top_programs
from service.problems.load import load_problem
from service.runs import create_run
from tests.service.engine_helpers import returns, tiny_problem

EVOFORGE = [str(Path(sys.executable).with_name("evoforge"))]
PROGRAM = """\"\"\"Return a number as close to 10 as possible.\"\"\"
# EVOLVE-BLOCK-START
def value():
    return 1
# EVOLVE-BLOCK-END


def construct():
    return [value()]
"""
SCORER = """
def score(data):
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], (int, float)):
        raise ValueError("construct() must return [a number]")
    if data[0] != data[0] or abs(data[0]) > 1e9:
        raise ValueError(f"{data[0]!r} is not a finite number")
    return {"combined_score": -abs(data[0] - 10.0)}
"""
TOML = """[problem]
name = "tiny_two_phase"
description = "Make value() return a number as close to 10 as possible."
scorer = "scorer.py"
entry = "construct"
[run.evaluation]
timeout_s = 10
workers = 2
"""


def two_phase_problem(folder: Path) -> Path:
    """Writes a tiny two-phase problem (no evaluator.py) into folder and returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "initial_program.py").write_text(PROGRAM)
    (folder / "scorer.py").write_text(SCORER)
    (folder / "problem.toml").write_text(TOML)
    return folder


def evoforge(*args: str, home: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVOFORGE_HOME": str(home), "COLUMNS": "200"}
    proc = subprocess.run([*EVOFORGE, *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert (proc.returncode == 0) == ok, \
        f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_finished_run_reverifies_its_top_programs_strictly_and_reports_the_tier(
        tmp_path: Path) -> None:
    folder = two_phase_problem(tmp_path / "tiny")
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([returns(v) for v in (4, 9, 11, 9.5)]))
    home = tmp_path / "home"
    proc = evoforge("run", str(folder), "--iterations", "4", "--llm", "scripted", "--model",
                    str(answers), "--json", home=home)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["best_score"] == -0.5 and summary["best_tier"] == "re-verified strict"
    assert "best score tier: re-verified strict" in proc.stdout
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    with db.session() as s:
        tiers = sorted((p.score, p.tier or "") for p in s.scalars(select(ProgramRow)))
    # the top 3 distinct programs (returning 9.5, 9 and 11) are re-verified, the rest are not
    assert tiers == [(-9.0, ""), (-6.0, ""), (-1.0, "strict"), (-1.0, "strict"), (-0.5, "strict")]
    best = evoforge("best", "1", home=home)
    assert "(re-verified strict)" in best.stderr and "return 9.5" in best.stdout
    lines = evoforge("verify", "1", "--top-k", "2", "--json", home=home).stdout.splitlines()
    assert [json.loads(line)["tier"] for line in lines] == ["re-verified strict"] * 2


def stored(db: Database, run_id: int, code: str, score: float, **extra: object) -> int:
    """Stores a scored program row directly (as if evaluated earlier) and returns its id."""
    with db.session() as s:
        digest = hashlib.sha256(str(extra.pop("same_as", code)).encode()).hexdigest()
        row = ProgramRow(run_id=run_id, code=code, code_hash=digest,
                         status="ok", score=score, **extra)
        s.add(row)
        s.flush()
        return row.id


def test_a_stored_score_the_program_does_not_reproduce_fails_reverification(
        db_url: str, tmp_path: Path) -> None:
    problem = load_problem(two_phase_problem(tmp_path / "tiny"))
    cfg = build_run_config(problem.run_defaults)
    upgrade(db_url)
    db = Database(db_url)
    run_id = create_run(db, problem, cfg)
    honest = stored(db, run_id, PROGRAM.replace("return 1", "return 8"), -2.0)
    forged = stored(db, run_id, PROGRAM.replace("return 1", "return 3"), -0.1)  # really -7
    nan = stored(db, run_id, PROGRAM.replace("return 1", "return float('nan')"), -1.0)
    stored(db, run_id, "copy", -0.1, same_as=PROGRAM.replace("return 1", "return 3"))
    stored(db, run_id, "migrant", 5.0, kind="migrant")
    verdicts = {v.program_id: v for v in reverify_run(db, run_id, problem, cfg, top_k=3)}
    assert set(verdicts) == {forged, nan, honest}  # one per code, migrants left out
    assert verdicts[honest].tier == "strict" and verdicts[honest].verified_score == -2.0
    assert verdicts[forged].tier == "failed" and verdicts[forged].verified_score == -7.0
    assert "score not reproduced: evaluated -0.1, now -7.0" in verdicts[forged].note
    assert verdicts[nan].tier == "failed" and "rejected: " in verdicts[nan].note
    assert "nan is not a finite number" in verdicts[nan].note
    with db.session() as s:
        rows = {r.id: r for r in s.scalars(select(ProgramRow).where(ProgramRow.run_id == run_id))}
        assert rows[honest].tier == "strict" and rows[honest].verified_at is not None
        assert rows[forged].tier == "failed" and "not reproduced" in rows[forged].verify_note
        assert [p.id for p in top_programs(s, run_id, "maximize", 2)] == [forged, nan]


def test_openevolve_style_problem_is_reevaluated_not_strict(tmp_path: Path) -> None:
    problem = load_problem(tiny_problem(tmp_path / "plain"))
    cfg = build_run_config(problem.run_defaults)
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    run_id = create_run(db, problem, cfg)
    good = stored(db, run_id, problem.initial_code.replace("return 1", "return 9"), -1.0)
    broken = stored(db, run_id, problem.initial_code.replace("return 1", "return 1 / 0"), 0.0)
    verdicts = {v.program_id: v for v in reverify_run(db, run_id, problem, cfg)}
    assert verdicts[good].tier == "reevaluated" and verdicts[good].label == "re-evaluated"
    assert verdicts[broken].tier == "failed" and "ZeroDivisionError" in verdicts[broken].note


def test_verify_command_exits_1_when_a_score_does_not_hold(tmp_path: Path) -> None:
    problem = load_problem(two_phase_problem(tmp_path / "tiny"))
    home = tmp_path / "home"
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    run_id = create_run(db, problem, build_run_config(problem.run_defaults))
    stored(db, run_id, PROGRAM.replace("return 1", "return 3"), 100.0)
    proc = evoforge("verify", str(run_id), home=home, ok=False)
    assert "re-verification failed" in proc.stdout and "not reproduced" in proc.stdout
    assert "(re-verification failed (score not reproduced" in evoforge(
        "best", str(run_id), home=home).stderr
    missing = evoforge("verify", "99", home=home, ok=False)
    assert "no run 99" in missing.stderr


@pytest.mark.parametrize("top_k", [0])
def test_reverification_can_be_switched_off(tmp_path: Path, top_k: int) -> None:
    folder = two_phase_problem(tmp_path / "tiny")
    config = tmp_path / "run.toml"
    config.write_text(f"[evaluation]\nreverify_top_k = {top_k}\n")
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([returns(9)]))
    proc = evoforge("run", str(folder), "--config", str(config), "--iterations", "1", "--llm",
                    "scripted", "--model", str(answers), "--json", home=tmp_path / "home")
    assert json.loads(proc.stdout.strip().splitlines()[-1])["best_tier"] == "evaluated"


def test_noisy_problem_is_rescored_on_fresh_seeds_and_reports_their_mean(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "noisy")
    evaluator = (folder / "evaluator.py").read_text().replace(
        '    return {"combined_score": -abs(v - 10.0), "value": v}',
        '    import os\n    seed = int(os.environ["EVOFORGE_EVAL_SEED"])\n'
        '    return {"combined_score": -abs(v - 10.0) + seed, "value": v}')
    (folder / "evaluator.py").write_text(evaluator)
    problem = load_problem(folder)
    cfg = build_run_config(problem.run_defaults, {"evaluation": {"fresh_seeds": 3}})
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    run_id = create_run(db, problem, cfg)
    good = stored(db, run_id, problem.initial_code.replace("return 1", "return 9"), -1.0)
    (verdict,) = reverify_run(db, run_id, problem, cfg, top_k=1)
    assert verdict.program_id == good and verdict.tier == "reseeded"
    assert verdict.verified_score == -1.0 + 2.0  # seeds 1, 2, 3: mean shift 2
    assert "mean of 3 fresh seeds 1" in verdict.note and verdict.label == (
        "re-evaluated on fresh seeds")
