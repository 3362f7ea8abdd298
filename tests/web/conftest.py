"""A real UI server (uvicorn in a thread) over a fresh PostgreSQL database holding a finished run
of the tiny problem, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from service.api.app import create_app
from service.api.auth_tokens import create_token
from service.catalog import ServedModel
from service.db import Database, upgrade
from service.runs import drive
from service.settings import Settings
from tests.conftest import REPO, free_port, fresh_pg_database
from tests.service.api.conftest import tiny_files
from tests.service.engine_helpers import returns

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "benchmarks" / "out" / "ui"
ANSWERS = (3, 7, 9, 10, 12, 5, 8, 11)


@dataclass
class Site:
    """The server's base URL, a write token, an HTTP client with it, and the finished run."""

    url: str
    secret: str
    client: httpx.Client
    db: Database
    settings: Settings
    tmp: Path
    run_id: int = 0
    problem_id: int = 0

    def new_run(self, iterations: int = 8, start: bool = True, answers: tuple = ANSWERS,
                islands: int = 2, problem_id: int | None = None,
                texts: list[str] | None = None) -> int:
        """Creates a run of the tiny problem whose scripted LLM answers value() returning each of
        answers in turn (an expression such as "1/0" fails), or the raw texts; returns its id."""
        name = f"answers-{uuid.uuid4().hex[:8]}"  # a model the operator names, one per run
        path = self.tmp / f"{name}.json"
        path.write_text(json.dumps(texts or [returns(v) for v in answers]))
        self.settings.models[name] = ServedModel(backend="scripted", model=str(path))
        r = self.client.post("/api/runs", json={"problem_id": problem_id or self.problem_id,
                                                "start": start,
                                                "config": {
            "llm": {"use": name},
            "budget": {"iterations": iterations}, "evaluation": {"workers": 2, "timeout_s": 10},
            "search": {"num_islands": islands, "migration_interval": 4}}})
        assert r.status_code == 201, r.text
        return self.visible(f"/api/runs/{r.json()['id']}")["id"]

    def visible(self, path: str) -> dict:
        """GETs path until it answers 200 (a 201 can arrive just before its commit lands)."""
        deadline = time.monotonic() + 10
        while (r := self.client.get(path)).status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.status_code == 200, r.text
        return r.json()

    def drive(self, run_id: int) -> None:
        """Drives a run to its end in this process, as a controller does (in a thread of its own:
        Playwright's event loop holds this one)."""
        worker = threading.Thread(target=asyncio.run, args=(drive(self.db, run_id, self.settings),))
        worker.start()
        worker.join(timeout=120)
        assert not worker.is_alive(), f"run {run_id} did not finish within 120 s"


def _serve(app: object, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the UI server did not start within 20 s"
        time.sleep(0.05)
    return server, thread


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Returns a running server over a database with one finished 8-iteration run."""
    tmp = tmp_path_factory.mktemp("web")
    urls = fresh_pg_database()
    pg_url = next(urls)
    upgrade(pg_url)
    db = Database(pg_url)
    settings = Settings(home=tmp / "home", db=pg_url, models={"answers": ServedModel(
        backend="scripted", model=str(tmp / "answers.json"))})  # what Site.new_run writes
    with db.session() as s:
        _, secret = create_token(s, "ui", "write", None)
    port = free_port()
    server, thread = _serve(create_app(db, settings), port)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {secret}"})
    site = Site(url, secret, client, db, settings, tmp)
    r = client.post("/api/problems", json={"files": tiny_files()})
    assert r.status_code == 201, r.text
    site.problem_id = site.visible(f"/api/problems/{r.json()['id']}")["id"]
    site.run_id = site.new_run()
    site.drive(site.run_id)
    try:
        yield site
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=15)
        db.close()
        next(urls, None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Returns Debian's Chromium, headless, through Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (bash .ci/setup does it)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def bare_page(browser: Browser) -> Iterator[Page]:
    """Returns a page with no token stored; fails the test on any console error."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"console errors: {errors}"


@pytest.fixture
def page(site: Site, bare_page: Page) -> Page:
    """Returns a page whose localStorage holds the write token on every load."""
    bare_page.context.add_init_script(
        f"localStorage.setItem('evoforge.token', {json.dumps(site.secret)})")
    return bare_page


def shoot(pg: Page, name: str) -> Path:
    """Saves a full-page screenshot as benchmarks/out/ui/ui_NAME.png; returns its path."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"ui_{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path
