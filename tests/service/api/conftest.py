"""An API app over a fresh, migrated PostgreSQL database, with tokens of every kind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.auth_tokens import create_token
from service.catalog import ServedModel
from service.db import Database, upgrade
from service.runs import drive
from service.settings import Settings
from tests.service.engine_helpers import EVALUATOR, PROGRAM, TOML, returns


@dataclass
class Api:
    """A test client plus the tokens' secrets and the database behind them."""

    client: TestClient
    db: Database
    settings: Settings
    tokens: dict[str, str]
    ids: dict[str, int]
    tmp: Path

    def h(self, who: str | None) -> dict[str, str]:
        """Returns the Authorization header of a named token (none for None)."""
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def problem(self, who: str = "alice") -> int:
        """Creates the tiny problem as who; returns its id."""
        r = self.client.post("/api/problems", json={"files": tiny_files()}, headers=self.h(who))
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def scripted(self, answers: Path) -> str:
        """Names a scripted model answering from the JSON list in answers, as an operator would
        in the models file; returns its name for llm.use."""
        self.settings.models[answers.stem] = ServedModel(backend="scripted", model=str(answers))
        return answers.stem

    def run(self, who: str = "alice", iterations: int = 6, start: bool = True,
            problem_id: int | None = None, **config: object) -> int:
        """Creates a run of the tiny problem with scripted answers (the model named 'answers');
        returns its id."""
        cfg = {"llm": {"use": "answers"},
               "budget": {"iterations": iterations},
               "evaluation": {"workers": 2, "timeout_s": 10},
               "search": {"num_islands": 2, "migration_interval": 4}, **config}
        r = self.client.post("/api/runs", headers=self.h(who), json={
            "problem_id": problem_id or self.problem(who), "config": cfg, "start": start})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def drive(self, run_id: int) -> None:
        """Drives a run to its end in this process (what a controller does), in a thread of its
        own: a Playwright test that ran before may hold this thread's event loop."""
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, drive(self.db, run_id, self.settings)).result()


def tiny_files() -> dict[str, str]:
    """Returns the tiny problem as a files map."""
    return {"initial_program.py": PROGRAM, "evaluator.py": EVALUATOR, "problem.toml": TOML}


@pytest.fixture
def api(pg_url: str, tmp_path: Path) -> Iterator[Api]:
    """Returns an API over a fresh PostgreSQL database with tokens alice (write, quota 2),
    bob (write), alice_reader (read, sharing alice's rows), reader (read) and admin; its one
    named model, 'answers', is scripted from tmp_path/answers.json."""
    upgrade(pg_url)
    db = Database(pg_url)
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([returns(v) for v in (3, 7, 9, 10, 12, 5, 8, 11)]))
    settings = Settings(home=tmp_path / "home", db=pg_url, models={"answers": ServedModel(
        backend="scripted", model=str(answers))})
    tokens, ids = {}, {}
    with db.session() as s:
        for name, scope, quota in (("alice", "write", 2), ("bob", "write", None),
                                   ("reader", "read", None), ("admin", "admin", None)):
            row, tokens[name] = create_token(s, name, scope, quota)
            ids[name] = row.id
        row, tokens["alice_reader"] = create_token(s, "alice-ro", "read", acts_for=ids["alice"])
        ids["alice_reader"] = row.id
    app = create_app(db, settings, max_upload_bytes=64 * 1024)
    with TestClient(app) as client:
        yield Api(client, db, settings, tokens, ids, tmp_path)
    db.close()
