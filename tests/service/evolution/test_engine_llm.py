"""Short real small-model runs: in-process llama.cpp, and over a real OpenAI-compatible server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import select

from service.db import Database
from service.db.models import LLMSampleRow, ProgramRow
from service.edits.rewrite import closed_prefix
from tests.service.cli.test_run import evoforge, last_json
from tests.service.engine_helpers import tiny_problem

pytestmark = pytest.mark.llm


def samples(home: Path) -> list[LLMSampleRow]:
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    with db.session() as s:
        return list(s.scalars(select(LLMSampleRow).order_by(LLMSampleRow.id)))


def test_embedded_model_runs_the_loop_end_to_end(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    run_toml = tmp_path / "RUN.toml"
    run_toml.write_text("[llm]\nmax_tokens = 96\n[budget]\niterations = 4\n")
    home = tmp_path / "home"
    summary = last_json(evoforge("run", str(folder), "--config", str(run_toml), "--seed", "1",
                                 "--json", home=home).stdout)
    assert summary["iterations"] == 4 and summary["llm_calls"] == 4
    assert summary["initial_score"] == -9.0 and summary["best_score"] >= -9.0
    rows = samples(home)
    assert len(rows) == 4
    assert all(r.completion and r.completion_tokens > 0 and r.prompt_tokens > 0 for r in rows)
    assert all(r.model.startswith("SmolLM2") for r in rows)
    assert all(r.outcome in ("child", "rejected", "duplicate", "unchanged") for r in rows)
    assert all(r.rejection for r in rows if r.outcome == "rejected")
    closed = [r.completion for r in rows if closed_prefix(r.completion) is not None]
    # generation stopped where the code block closed: no prose after it was paid for
    assert all(not c[len(closed_prefix(c)):].strip() for c in closed)
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    with db.session() as s:
        children = s.scalars(select(ProgramRow).where(ProgramRow.kind == "mutation")).all()
    assert all(c.status in ("ok", "failed", "duplicate") for c in children)


def test_openai_backend_runs_against_a_real_server(llama_server_url: str, tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    home = tmp_path / "home"
    summary = last_json(evoforge(
        "run", str(folder), "--llm", "openai", "--llm-url", llama_server_url, "--iterations", "3",
        "--json", home=home).stdout)
    assert summary["iterations"] == 3 and summary["status"] == "completed"
    rows = samples(home)
    assert len(rows) == 3 and all(r.completion_tokens > 0 for r in rows)


def test_server_down_pauses_the_run_and_resume_finishes_it(
        llama_server_url: str, tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    home = tmp_path / "home"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    run_toml = tmp_path / "RUN.toml"
    run_toml.write_text(f'[llm]\nbackend = "openai"\nurl = "{dead}"\nmodel = "smol"\nretries = 1\n'
                        "[budget]\niterations = 2\n")
    proc = evoforge("run", str(folder), "--config", str(run_toml), "--json", home=home, check=False)
    assert proc.returncode == 3
    assert "unreachable" in proc.stderr and "evoforge resume 1" in proc.stderr
    assert last_json(proc.stdout)["status"] == "paused"
    summary = last_json(evoforge("resume", "1", "--llm-url", llama_server_url, "--json",
                                 home=home).stdout)
    assert summary["status"] == "completed" and summary["iterations"] == 2
    assert summary["initial_score"] == -9.0


def test_embedded_model_improves_the_quickstart_whose_program_is_three_files(
        tmp_path: Path) -> None:
    folder = Path(__file__).resolve().parents[3] / "problems" / "quickstart_files"
    home = tmp_path / "home"
    summary = last_json(evoforge("run", str(folder), "--iterations", "12", "--seed", "1",
                                 "--json", home=home).stdout)
    assert summary["best_score"] > summary["initial_score"] > 0
    best = Path(summary["best_path"])
    assert best.is_dir() and sorted(p.name for p in best.glob("*.py")) == [
        "bend.py", "curve.py", "line.py"]
    rows = samples(home)
    assert len(rows) == 12 and sum(r.outcome == "child" for r in rows) >= 3
    assert all("the code to improve is in" in r.prompt[-1]["content"] for r in rows)
