"""`evoforge runs show`: one run's per-model and per-island statistics, as a table and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from service.llm.factory import make_backend
from service.settings import Settings
from tests.service.driver import drive
from tests.service.engine_helpers import config, returns, tiny_problem


def test_runs_show_prints_per_model_statistics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps([returns(v) for v in (4, 8)]))
    cfg = config(budget__iterations=4, llm={"models": [
        {"backend": "scripted", "name": "m1", "model": str(answers)},
        {"backend": "scripted", "name": "m2", "model": str(answers)}]})
    _, run, _ = drive(url, tiny_problem(tmp_path / "p"), cfg, make_backend(cfg.llm, Settings()))
    from typer.testing import CliRunner

    from service.cli.app import app
    runner = CliRunner()
    shown = runner.invoke(app, ["runs", "show", str(run.id), "--db", url],
                          env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "m1" in shown.output and "m2" in shown.output and "too_similar" in shown.output
    data = json.loads(runner.invoke(app, ["runs", "show", str(run.id), "--db", url,
                                          "--json"]).output)
    assert {m["key"] for m in data["models"]} == {"m1", "m2"}
    assert sum(m["samples"] for m in data["models"]) == 4
    missing = runner.invoke(app, ["runs", "show", "999", "--db", url])
    assert missing.exit_code == 1 and "no run 999" in missing.output
