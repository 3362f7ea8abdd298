"""Each evaluation records the sandbox layers it ran under (`evoforge eval`, the local pool's rows,
a Celery worker's rows), and the run's config carries its isolation policy."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select

from evaluators.isolation import layers
from service.config import ConfigError
from service.db import Database, upgrade
from service.db.models import EvaluationRow, RunRow
from service.db.session import alembic_config
from service.evolution.ledger import Ledger
from service.execution import celery_tasks as tasks
from service.execution.base import make_job
from service.problems.load import load_problem
from service.runs import create_run
from tests.service.engine_helpers import config, returns, tiny_problem


def evoforge(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Returns the finished `evoforge ARGS` run as a user runs it, with EVOFORGE_HOME = home."""
    env = {**os.environ, "EVOFORGE_HOME": str(home), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                          text=True, env=env, check=False, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"evoforge {args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def scripted(tmp_path: Path, values: list[object]) -> Path:
    """Returns a file of scripted LLM answers whose value() returns each of values."""
    path = tmp_path / "answers.json"
    path.write_text(json.dumps([returns(v) for v in values]))
    return path


def assert_sandboxed(names: list[str] | None) -> None:
    """Asserts names hold every layer this machine's configuration asks for."""
    assert names, names
    have = {name.split(":")[0] for name in names}
    assert set(layers.required()) <= have, names


def test_eval_prints_the_layers_the_evaluation_ran_under(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    program = str(folder / "initial_program.py")
    as_json = last_json(evoforge("eval", str(folder), program, "--json", home=tmp_path).stdout)
    assert as_json["score"] == -9.0
    assert_sandboxed(as_json["layers"])
    shown = evoforge("eval", str(folder), program, home=tmp_path).stdout
    assert f"sandbox layers: {', '.join(as_json['layers'])}" in shown


def test_a_layer_the_machine_lacks_fails_eval_with_the_fix_unless_best_effort(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV_VAR, "bwrap,seccomp,docker")
    layers.reset()
    if "docker" in layers.active_names():
        pytest.skip("a docker engine is here")
    layers.reset()
    folder = tiny_problem(tmp_path / "tiny")
    program = str(folder / "initial_program.py")
    refused = evoforge("eval", str(folder), program, "--json", home=tmp_path, check=False)
    result = last_json(refused.stdout)
    assert refused.returncode == 1 and result["error_kind"] == "isolation"
    assert "leave docker out of EVOFORGE_SANDBOX_LAYERS" in result["error"]
    toml = folder / "problem.toml"
    toml.write_text(toml.read_text() + 'isolation = "best-effort"\n')  # in [run.evaluation]
    ran = last_json(evoforge("eval", str(folder), program, "--json", home=tmp_path).stdout)
    assert ran["score"] == -9.0 and "docker" not in ran["layers"] and "bwrap" in ran["layers"]


def test_the_local_pool_records_each_evaluations_layers(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    evoforge("run", str(folder), "--iterations", "3", "--llm", "scripted", "--model",
             str(scripted(tmp_path, [4, 9, 11])), "--json", home=tmp_path / "home")
    with sqlite3.connect(tmp_path / "home" / "evoforge.db") as conn:
        rows = conn.execute("SELECT status, layers FROM evaluations").fetchall()
    assert len(rows) == 4 and all(status == "ok" for status, _ in rows)
    for _, names in rows:
        assert_sandboxed(json.loads(names))


def test_a_celery_worker_records_the_layers_with_the_result(pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    db = Database(pg_url)
    try:
        problem = load_problem(tiny_problem(tmp_path / "tiny"))
        cfg = config()
        _, eid = Ledger(db, create_run(db, problem, cfg), "celery").add_initial(
            problem.initial_code, "h")
        job = make_job(problem, problem.initial_code, cfg.evaluation, evaluation_id=eid)
        assert tasks.evaluate(eid, job.to_dict(), pg_url) == "written"  # the task body, no broker
        with db.session() as s:
            row = s.get(EvaluationRow, eid)
            assert row.status == "ok" and row.layers == row.result["layers"]
            assert_sandboxed(row.layers)
    finally:
        conn = tasks._connections.pop(db.url, None)
        if conn is not None:
            conn.invalidate()
        db.close()


def test_the_isolation_policy_is_strict_by_default_validated_and_stored_with_the_run(
        tmp_path: Path) -> None:
    assert config().evaluation.isolation == "strict"
    with pytest.raises(ConfigError, match=r"evaluation\.isolation"):
        config(evaluation__isolation="lenient")
    cfg = config(evaluation__isolation="best-effort")
    problem = load_problem(tiny_problem(tmp_path / "tiny"))
    assert make_job(problem, "x = 1", cfg.evaluation).isolation == "best-effort"
    db = Database(f"sqlite:///{tmp_path / 'evoforge.db'}")
    run_id = create_run(db, problem, cfg)
    with db.session() as s:
        assert s.get(RunRow, run_id).config["evaluation"]["isolation"] == "best-effort"
    db.close()


def test_the_layers_migration_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evoforge.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0007")
    command.downgrade(alembic_config(url), "0007")
    upgrade(url)
    command.stamp(alembic_config(url), "0007")  # the column is there, the version says it is not
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        assert s.scalars(select(EvaluationRow.layers)).all() == []
    db.close()
