"""`evoforge train RUN` (a GRPO + LoRA round by hand) and `evoforge adapters RUN`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from service.cli.app import app
from service.db.models import AdapterRow, LLMSampleRow
from tests.service.driver import scripted_run
from tests.service.engine_helpers import config
from tests.service.rl.test_schedule import TINY_RL

pytestmark = pytest.mark.llm  # the real SmolLM2 (trained, converted)


def test_train_command_records_an_adapter_and_its_children(sqlite_url: str, tmp_path: Path,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("EVOFORGE_HOME", str(tmp_path / "home"))
    db, run_id = scripted_run(sqlite_url, tmp_path / "tiny", config(budget__iterations=2,
                                                                   rl=TINY_RL))
    result = CliRunner().invoke(app, ["train", str(run_id), "--steps", "1", "--db", sqlite_url,
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads([ln for ln in result.output.splitlines() if ln.startswith("{")][-1])
    assert report["adapter"] == f"run{run_id}-v1" and report["reward_stats"]["n"] == 2
    assert Path(report["path"], "adapter.gguf").is_file()
    assert str(tmp_path / "home") in report["path"]
    with db.session() as s:
        row = s.scalar(select(AdapterRow).where(AdapterRow.run_id == run_id))
        samples = s.scalars(select(LLMSampleRow).where(
            LLMSampleRow.adapter == f"run{run_id}-v1-training")).all()
    assert row.version == 1 and row.steps == 1
    assert len(samples) == 2 and all(smp.reward is not None for smp in samples)
    listed = CliRunner().invoke(app, ["adapters", str(run_id), "--db", sqlite_url])
    assert f"run{run_id}-v1" in listed.output


def test_train_command_explains_a_run_without_prompts(sqlite_url: str, tmp_path: Path) -> None:
    _, run_id = scripted_run(sqlite_url, tmp_path / "tiny", config(budget__iterations=0))
    result = CliRunner().invoke(app, ["train", str(run_id), "--db", sqlite_url])
    assert result.exit_code == 1 and "no recorded prompts" in result.output
    missing = CliRunner().invoke(app, ["train", "999", "--db", sqlite_url])
    assert missing.exit_code == 1 and "no run 999" in missing.output
