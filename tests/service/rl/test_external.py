"""`evoforge trainer` as a real process: it claims a due round of an external-trainer run, runs a
real GRPO round on the embedded model, records and writes the adapter, loads it into the LLM
server (a recording stand-in for vLLM's runtime-LoRA route), and the waiting controller goes on
with it. Also: a claimed round is not trained twice, bad input is explained, and a server that
is down gets the adapter later."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from service.cli.app import app
from service.db import Database
from service.db.models import AdapterRow, EvaluationRow, LLMSampleRow, ProgramRow
from service.rl.external import Trainer
from service.rl.rounds import claim, create_round, finish, get_round
from service.settings import Settings
from tests.conftest import free_port
from tests.service.driver import build, drive, in_thread, scripted_run, wait_until
from tests.service.engine_helpers import config, returns, tiny_problem
from tests.service.rl.test_schedule import TINY_RL, AdapterScripted

EVOFORGE = str(Path(sys.executable).parent / "evoforge")
EXTERNAL = {**TINY_RL, "enabled": True, "trainer": "external", "every_n_children": 3}
ONE_AT_A_TIME = {"workers": 1, "in_flight": 1, "timeout_s": 10}


class FakeVLLM(BaseHTTPRequestHandler):
    """Records POST /v1/load_lora_adapter and answers it (and /v1/models) as vLLM does."""

    calls: ClassVar[list[tuple[str, dict]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_GET(self) -> None:
        self._send(200, json.dumps({"data": [{"id": "base", "max_model_len": 2048}]}))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append((self.path, body))
        self._send(200 if self.path == "/v1/load_lora_adapter" else 404, "Success")


@pytest.fixture
def vllm() -> Iterator[str]:
    """Returns the base URL (no /v1) of a recording vLLM stand-in."""
    FakeVLLM.calls = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeVLLM)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _trainer(url: str, home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVOFORGE_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([EVOFORGE, "trainer", "--db", url, "--once", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.llm
def test_the_trainer_process_trains_a_due_round_and_the_waiting_run_uses_its_adapter(
        pg_url: str, tmp_path: Path, vllm: str) -> None:
    cfg = config(budget__iterations=6, evaluation=ONE_AT_A_TIME, rl=EXTERNAL)
    llm = AdapterScripted([returns(3), returns(5), returns(7), returns(8)])
    db, engine = build(pg_url, tiny_problem(tmp_path / "tiny"), cfg, llm)
    run_id = engine.run_id
    engine.training.poll_s = 0.2
    thread, out = in_thread(engine)
    wait_until(lambda: _round_status(db) == "due")
    adapters = tmp_path / "adapters"
    done = _trainer(pg_url, tmp_path / "home", "--runs", str(run_id), "--adapters",
                    str(adapters), "--llm-url", f"{vllm}/v1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained 1 round(s), 0 failed" in done.stderr and "claimed RL round 1" in done.stderr
    thread.join(120)
    assert out and out[0].status == "completed" and out[0].iterations == 6
    name, folder = f"run{run_id}-v1", adapters / f"run{run_id}" / "v1"
    assert (folder / "adapter.gguf").is_file() and (folder / "adapter_model.safetensors").is_file()
    rnd = get_round(db, 1)
    with db.session() as s:
        row = s.scalars(select(AdapterRow).where(AdapterRow.run_id == run_id)).one()
        samples = s.scalars(select(LLMSampleRow).where(LLMSampleRow.run_id == run_id)
                            .order_by(LLMSampleRow.id)).all()
        finished = s.scalars(select(EvaluationRow.program_id).where(
            EvaluationRow.run_id == run_id, EvaluationRow.status.in_(("ok", "failed")))).all()
        evaluated = s.scalars(select(ProgramRow.id).where(
            ProgramRow.run_id == run_id, ProgramRow.status.in_(("ok", "failed")))).all()
    assert (row.name, row.version, row.steps, Path(row.path)) == (name, 1, 1, folder)
    assert rnd.status == "done" and rnd.adapter_id == row.id and rnd.served_at is not None
    assert FakeVLLM.calls == [("/v1/load_lora_adapter", {"lora_name": name,
                                                          "lora_path": str(folder),
                                                          "load_inplace": True})]
    assert llm.loaded == [(name, folder)]  # the controller loaded the version from its row
    # two children by the base model, the round's two (written by the trainer), two by v1
    assert [smp.adapter for smp in samples] == [None, None, f"{name}-training",
                                                f"{name}-training", name, name]
    assert sorted(smp.iteration for smp in samples) == [1, 2, 3, 4, 5, 6]
    assert all(smp.reward is not None for smp in samples[2:4])
    assert sorted(finished) == sorted(evaluated)  # one finished evaluation per program
    again = AdapterScripted([returns(9)])  # a controller taking the run over later
    cfg7 = config(budget__iterations=7, evaluation=ONE_AT_A_TIME, rl=EXTERNAL)
    drive(db, tmp_path / "tiny", cfg7, again, run_id=run_id)
    assert again.loaded == [(name, folder)]
    with db.session() as s:
        last = s.scalars(select(LLMSampleRow).where(LLMSampleRow.run_id == run_id)
                         .order_by(LLMSampleRow.id.desc())).first()
    assert (last.iteration, last.adapter) == (7, name)


def _round_status(db: Database) -> str | None:
    from service.db.models import RLRoundRow

    with db.session() as s:
        row = s.get(RLRoundRow, 1)
        return None if row is None else row.status


def _external_run(url: str, tmp_path: Path) -> tuple[Database, int]:
    """Returns a run of the tiny problem with rl.trainer external that has a scored parent."""
    cfg = config(budget__iterations=2, rl={**EXTERNAL, "every_n_children": 50})
    return scripted_run(url, tmp_path / "tiny", cfg)


def test_a_round_another_trainer_holds_is_not_trained_again(pg_url: str, tmp_path: Path) -> None:
    db, run_id = _external_run(pg_url, tmp_path)
    rnd = create_round(db, run_id, evaluations=3, steps=1)
    assert claim(db, rnd.id, "gpu-a:1", lease_s=120)
    second = _trainer(pg_url, tmp_path / "home", "--runs", str(run_id), timeout=120)
    assert second.returncode == 0, second.stderr
    assert "no round was due" in second.stderr
    now = get_round(db, rnd.id)
    assert now.status == "training" and now.trainer == "gpu-a:1"
    with db.session() as s:
        assert s.scalars(select(AdapterRow)).all() == []


def test_bad_runs_and_an_old_schema_are_explained(pg_url: str, sqlite_url: str,
                                                  tmp_path: Path) -> None:
    def said(*args: str) -> str:
        result = CliRunner().invoke(app, ["trainer", "--once", *args])
        assert result.exit_code == 1
        return " ".join(result.output.split())

    assert "run `evoforge db upgrade --db" in said("--db", pg_url)  # never upgraded
    _, inline = scripted_run(sqlite_url, tmp_path / "tiny", config(budget__iterations=1))
    assert "no run 999" in said("--db", sqlite_url, "--runs", "999")
    assert "trainer = \"external\"" in said("--db", sqlite_url, "--runs", str(inline))
    assert "--runs 1,2" in said("--db", sqlite_url, "--runs", "1;2")


def test_an_adapter_the_llm_server_could_not_take_is_loaded_once_it_answers(
        sqlite_url: str, tmp_path: Path, vllm: str) -> None:
    db, run_id = _external_run(sqlite_url, tmp_path)
    folder = tmp_path / "adapters" / f"run{run_id}" / "v1"
    with db.session() as s:
        row = AdapterRow(run_id=run_id, name=f"run{run_id}-v1", version=1, base_model="base",
                         steps=1, reward_stats={}, path=str(folder))
        s.add(row)
        s.flush()
        adapter_id = row.id
    rnd = create_round(db, run_id, evaluations=3, steps=1)
    assert claim(db, rnd.id, "gpu-a:1") and finish(db, rnd.id, "gpu-a:1", adapter_id=adapter_id)
    down = Trainer(db, Settings(), tmp_path / "adapters", llm_url=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    down.load_pending()
    down.close()
    assert time.monotonic() - started < 30
    after = get_round(db, rnd.id)
    assert after.status == "done" and after.served_at is None
    assert "LLM server down" in after.error and f"run{run_id}-v1 stays recorded" in after.error
    up = Trainer(db, Settings(), tmp_path / "adapters", llm_url=vllm)  # /v1 is added
    up.load_pending()
    up.load_pending()  # loaded once: nothing is pending any more
    up.close()
    assert get_round(db, rnd.id).served_at is not None and get_round(db, rnd.id).error is None
    assert FakeVLLM.calls == [("/v1/load_lora_adapter", {"lora_name": f"run{run_id}-v1",
                                                          "lora_path": str(folder),
                                                          "load_inplace": True})]


@pytest.mark.llm
@pytest.mark.parametrize(("sig", "ends"), [(signal.SIGKILL, "expired"), (signal.SIGTERM, "failed")])
def test_a_trainer_killed_mid_round_never_wedges_the_run(pg_url: str, tmp_path: Path,
                                                         sig: int, ends: str) -> None:
    """SIGKILL: the claim runs out (--lease 2); SIGTERM (docker stop): the round fails at once."""
    cfg = config(budget__iterations=5, evaluation=ONE_AT_A_TIME, rl=EXTERNAL)
    llm = AdapterScripted([returns(3), returns(5), returns(7), returns(8)])
    db, engine = build(pg_url, tiny_problem(tmp_path / "tiny"), cfg, llm)
    run_id = engine.run_id
    engine.training.poll_s = 0.2
    thread, out = in_thread(engine)
    wait_until(lambda: _round_status(db) == "due")
    env = {**os.environ, "EVOFORGE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([EVOFORGE, "trainer", "--db", pg_url, "--runs", str(run_id),
                             "--lease", "2", "--poll", "0.2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _round_status(db) == "training")
    finally:
        proc.send_signal(sig)
        proc.wait(60)
    thread.join(120)
    assert out and out[0].status == "completed" and out[0].iterations == 5
    rnd = get_round(db, 1)
    assert rnd.status == ends and f":{proc.pid}" in rnd.trainer and llm.loaded == []
    assert ("stopped renewing" if ends == "expired" else "stopped mid-round") in rnd.error
    with db.session() as s:
        iterations = s.scalars(select(LLMSampleRow.iteration).where(
            LLMSampleRow.run_id == run_id)).all()
        unfinished = s.scalars(select(ProgramRow.id).where(
            ProgramRow.run_id == run_id, ProgramRow.status.in_(("pending", "evaluating")))).all()
    assert sorted(iterations) == list(range(1, 6)) and unfinished == []
