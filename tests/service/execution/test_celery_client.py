"""The Celery executor with real brokers (RabbitMQ, Redis), real workers and real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import kombu
import pytest
from sqlalchemy import func, select

from evaluators.jobs import EvalResult
from service.db import Database, upgrade
from service.db.models import EvaluationRow, ProgramRow, RunRow
from service.evolution.ledger import Ledger
from service.execution.base import make_job
from service.execution.celery_client import CeleryExecutor
from service.execution.celery_tasks import finish
from service.problems.load import load_problem
from service.runs import create_run, drive
from service.settings import Settings
from tests.conftest import REPO
from tests.service.celery_helpers import BROKERS, Worker, new_queue, start_worker
from tests.service.engine_helpers import config, returns, tiny_problem

pytestmark = pytest.mark.postgres
SLOW = "    import time\n    time.sleep({s})\n    v = float"


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> str:
    """Each test runs once with RabbitMQ and once with Redis."""
    return BROKERS[request.param]


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    upgrade(pg_url)
    database = Database(pg_url)
    yield database
    database.close()


def slow_problem(folder: Path, seconds: float) -> Path:
    tiny_problem(folder)
    text = (folder / "evaluator.py").read_text().replace("    v = float", SLOW.format(s=seconds))
    (folder / "evaluator.py").write_text(text)
    return folder


def answers_file(tmp_path: Path, values: list[object]) -> Path:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps([returns(v) for v in values]))
    return path


def evaluations(db: Database) -> list[EvaluationRow]:
    with db.session() as s:
        return list(s.scalars(select(EvaluationRow).order_by(EvaluationRow.id)))


def test_run_on_workers_scores_every_candidate_exactly_once(
        tmp_path: Path, broker: str, db: Database) -> None:
    queue = new_queue()
    worker = start_worker(broker, queue, tmp_path / "worker")
    try:
        folder = tiny_problem(tmp_path / "tiny")
        cfg = config(budget__iterations=8, evaluation__executor="celery",
                     evaluation__broker=broker, evaluation__queue=queue,
                     llm__model=str(answers_file(tmp_path, [2, 3, 4, 5, 6, 7, 8, 9])))
        run_id = create_run(db, load_problem(folder), cfg)
        row = asyncio.run(drive(db, run_id, Settings(home=tmp_path / "home", db=str(db.url))))
    finally:
        worker.stop()
    assert row.status == "completed" and row.best_score == -1.0  # value 9 is 1 away from 10
    evs = evaluations(db)
    with db.session() as s:
        programs = list(s.scalars(select(ProgramRow).where(ProgramRow.kind != "migrant")))
    assert len(evs) == len(programs) == 9 == row.evaluations  # initial + 8 children
    assert {e.status for e in evs} == {"ok"} and all(e.deliveries == 1 for e in evs)
    assert all(e.worker.startswith("evoforge-") and e.result for e in evs)
    assert {p.status for p in programs} == {"ok"}


def _send_one(db: Database, folder: Path, cfg_queue: str, broker: str,
              during: callable) -> tuple[EvalResult, EvaluationRow]:
    """Sends the initial program of folder to the workers, calls during() meanwhile."""
    problem = load_problem(folder)
    cfg = config(evaluation__executor="celery", evaluation__queue=cfg_queue)
    run_id = create_run(db, problem, cfg)
    prog, eid = Ledger(db, run_id, "celery").add_initial(problem.initial_code, "h")
    job = make_job(problem, prog.code, cfg.evaluation, program_id=prog.id, evaluation_id=eid)
    executor = CeleryExecutor(db, broker, cfg_queue)
    killer = threading.Thread(target=during, daemon=True)
    killer.start()

    async def go() -> EvalResult:
        try:
            return await asyncio.wait_for(executor.evaluate(job), 120)
        finally:
            await executor.aclose()

    result = asyncio.run(go())
    killer.join(timeout=30)
    with db.session() as s:
        return result, s.get(EvaluationRow, eid)


def _kill_busy(worker: Worker, times: int, deadline_s: float = 60) -> None:
    """SIGKILLs the pool process that is evaluating, `times` times."""
    import os
    import signal

    killed: set[int] = set()
    deadline = time.time() + deadline_s
    while len(killed) < times and time.time() < deadline:
        for pid in worker.busy_pool():
            if pid not in killed:
                time.sleep(0.3)  # well into the evaluation
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
                break
        time.sleep(0.05)


def test_killed_pool_process_is_redelivered_and_finished_once(
        tmp_path: Path, broker: str, db: Database) -> None:
    queue = new_queue()
    worker = start_worker(broker, queue, tmp_path / "worker")
    try:
        folder = slow_problem(tmp_path / "tiny", 1.5)
        result, ev = _send_one(db, folder, queue, broker, lambda: _kill_busy(worker, 1))
    finally:
        worker.stop()
    assert result.ok and result.score == -9.0
    assert ev.status == "ok" and ev.deliveries == 2  # the first delivery died with its process


def test_evaluation_that_keeps_killing_its_worker_is_failed_not_redelivered_forever(
        tmp_path: Path, broker: str, db: Database) -> None:
    queue = new_queue()
    worker = start_worker(broker, queue, tmp_path / "worker",
                          env={"EVOFORGE_MAX_DELIVERIES": "2"})
    try:
        folder = slow_problem(tmp_path / "tiny", 3)
        result, ev = _send_one(db, folder, queue, broker, lambda: _kill_busy(worker, 2))
    finally:
        worker.stop()
    assert not result.ok and result.error_kind == "crash"
    assert "killed its worker 2 times" in result.error
    assert ev.status == "failed" and ev.deliveries == 3


def test_whole_worker_killed_another_worker_finishes_the_evaluation(
        tmp_path: Path, broker: str, db: Database) -> None:
    queue = new_queue()
    env = {"EVOFORGE_REDIS_VISIBILITY_TIMEOUT": "4"}  # Redis redelivers only after this
    first = start_worker(broker, queue, tmp_path / "w1", env=env)
    second: list[Worker] = []

    def crash_and_replace() -> None:
        deadline = time.time() + 60
        while not first.busy_pool() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        first.kill()
        second.append(start_worker(broker, queue, tmp_path / "w2", env=env))

    try:
        folder = slow_problem(tmp_path / "tiny", 1.5)
        result, ev = _send_one(db, folder, queue, broker, crash_and_replace)
    finally:
        first.stop()
        for w in second:
            w.stop()
    assert result.ok and ev.status == "ok" and ev.deliveries == 2
    assert ev.worker != "" and len(evaluations(db)) == 1


def test_result_is_written_once_whatever_the_deliveries(db: Database, tmp_path: Path) -> None:
    problem = load_problem(tiny_problem(tmp_path / "tiny"))
    run_id = create_run(db, problem, config())
    _, eid = Ledger(db, run_id, "celery").add_initial(problem.initial_code, "h")
    with db.session() as s:
        s.get(EvaluationRow, eid).status = "running"
    assert finish(db, eid, EvalResult(status="ok", score=1.0, metrics={"combined_score": 1.0}))
    assert not finish(db, eid, EvalResult.failure("crash", "a late duplicate"))
    with db.session() as s:
        ev = s.get(EvaluationRow, eid)
        assert ev.status == "ok" and ev.result["score"] == 1.0 and ev.error is None


def test_unreachable_broker_pauses_the_run_and_loses_nothing(
        tmp_path: Path, db: Database) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    cfg = config(evaluation__executor="celery", evaluation__queue=new_queue(),
                 evaluation__broker="amqp://guest:guest@127.0.0.1:1//",
                 llm__model=str(answers_file(tmp_path, [2])))
    run_id = create_run(db, load_problem(folder), cfg)
    row = asyncio.run(drive(db, run_id, Settings(home=tmp_path / "home", db=str(db.url))))
    assert row.status == "paused" and "unreachable" in row.stop_reason
    assert "--broker" in row.stop_reason
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ProgramRow)
                        .where(ProgramRow.status == "pending")) == 1
        assert s.get(RunRow, run_id).evaluations == 0


def test_controller_killed_mid_run_resume_takes_the_results_workers_wrote(
        tmp_path: Path, db: Database) -> None:
    import os
    import signal
    import subprocess
    import sys

    broker, queue = BROKERS["rabbitmq"], new_queue()
    worker = start_worker(broker, queue, tmp_path / "worker")
    folder = slow_problem(tmp_path / "tiny", 2)
    (tmp_path / "run.toml").write_text(
        f'[evaluation]\nexecutor = "celery"\nqueue = "{queue}"\nbroker = "{broker}"\n'
        '[search]\nnum_islands = 1\n')
    env = {**os.environ, "EVOFORGE_HOME": str(tmp_path / "home")}
    base = [sys.executable, "-m", "service.cli"]
    answers = answers_file(tmp_path, [2, 3, 4, 5, 6, 7])
    try:
        controller = subprocess.Popen(
            [*base, "run", str(folder), "--config", str(tmp_path / "run.toml"), "--iterations",
             "6", "--llm", "scripted", "--model", str(answers), "--db", str(db.url)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:  # wait for children being evaluated on the workers
            running = [e for e in evaluations(db) if e.status == "running"]
            if len(running) >= 2 and any(e.program_id != 1 for e in running):
                break
            time.sleep(0.1)
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        in_flight = {e.program_id for e in evaluations(db) if e.status in ("queued", "running")}
        assert in_flight, "the controller was not killed with evaluations in flight"
        deadline = time.time() + 60
        while time.time() < deadline:  # the workers finish them with no controller at all
            if all(e.status in ("ok", "failed") for e in evaluations(db)
                   if e.program_id in in_flight and e.deliveries):
                break
            time.sleep(0.2)
        resumed = subprocess.run([*base, "resume", "1", "--db", str(db.url)], env=env,
                                 capture_output=True, text=True, timeout=300, check=False)
    finally:
        worker.stop()
    assert resumed.returncode == 0, resumed.stderr
    evs = evaluations(db)
    with db.session() as s:
        programs = {p.id: p for p in s.scalars(select(ProgramRow))}
        run = s.get(RunRow, 1)
    assert run.status == "completed" and run.iterations == 6
    assert all(programs[pid].status == "ok" for pid in in_flight)  # the workers' results
    per_program = {}
    for e in evs:
        per_program.setdefault(e.program_id, []).append(e)
    assert all(len(v) == 1 and v[0].deliveries == 1 for v in per_program.values())  # no re-runs
    evaluated = [p for p in programs.values() if p.status in ("ok", "failed")
                 and p.kind != "migrant"]
    assert run.evaluations == len(evaluated) == len(evs)


HOSTILE = REPO / "tests" / "fixtures" / "hostile"
GOOD = REPO / "tests" / "fixtures" / "problems" / "good"


@pytest.fixture(scope="module")
def hostile_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One worker (one process) for the whole hostile corpus: each candidate must leave it fit."""
    worker = start_worker(BROKERS["rabbitmq"], new_queue(), tmp_path_factory.mktemp("hw"),
                          concurrency=1)
    yield worker
    worker.stop()


@pytest.mark.parametrize("name", ["fork_bomb", "setsid_daemon", "memory_bomb", "segfault",
                                  "os_exit", "cpu_loop"])
def test_hostile_candidate_on_a_worker_is_recorded_and_the_worker_stays_healthy(
        hostile_worker: Worker, db: Database, name: str) -> None:
    import uuid

    broker, queue, worker = BROKERS["rabbitmq"], hostile_worker.queue, hostile_worker
    tag = f"evoforge-hostile-{uuid.uuid4().hex[:8]}"
    code = (HOSTILE / f"{name}.py").read_text().replace("__TAG__", tag)
    problem = load_problem(GOOD)
    cfg = config(evaluation__executor="celery", evaluation__queue=queue,
                 evaluation__timeout_s=5, evaluation__memory_mb=512)
    run_id = create_run(db, problem, cfg)
    ledger = Ledger(db, run_id, "celery")
    _, bad_eid = ledger.add_initial(code, "bad")
    _, good_eid = ledger.add_initial(problem.initial_code, "good")
    executor = CeleryExecutor(db, broker, queue)

    async def go() -> tuple[EvalResult, EvalResult]:
        try:
            first = await asyncio.wait_for(executor.evaluate(make_job(
                problem, code, cfg.evaluation, evaluation_id=bad_eid)), 120)
            second = await asyncio.wait_for(executor.evaluate(make_job(
                problem, problem.initial_code, cfg.evaluation, evaluation_id=good_eid)), 120)
            return first, second
        finally:
            await executor.aclose()

    hostile_result, after = asyncio.run(go())
    assert worker.proc.poll() is None  # the worker survived
    if name == "setsid_daemon":  # it returns 7 after starting a daemon, which must be gone
        assert hostile_result.ok and hostile_result.score == 7.0
    else:
        assert not hostile_result.ok and hostile_result.error and hostile_result.error_kind
    assert after.ok  # the next candidate on the same worker is scored normally
    leftovers = subprocess_lines(["pgrep", "-f", tag])
    assert leftovers == [], f"processes of the hostile candidate outlived it: {leftovers}"
    with db.session() as s:
        assert s.get(EvaluationRow, bad_eid).status == ("ok" if hostile_result.ok else "failed")


def subprocess_lines(argv: list[str]) -> list[str]:
    import subprocess

    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_worker_scores_a_folder_program_against_a_problem_it_recreates_from_the_database(
        tmp_path: Path, db: Database) -> None:
    """The job carries the program's text form (read back from its row's files); the worker
    writes it as a folder for the evaluator, in a copy of the problem it rebuilt from the
    database because the controller's folder is not on its machine."""
    import shutil

    from evaluators import tree

    broker, queue = BROKERS["rabbitmq"], new_queue()
    folder = shutil.copytree(REPO / "problems" / "bin_packing_files",
                             tmp_path / "controller" / "bin_packing_files")
    problem = load_problem(folder)
    cfg = config(evaluation__executor="celery", evaluation__queue=queue)
    ledger = Ledger(db, create_run(db, problem, cfg), "celery")
    broken = problem.initial_code.replace("return sorted(", "return [0] + sorted(")
    (good, good_eid), (bad, bad_eid) = ledger.add_initials(
        [(problem.initial_code, "good", 0), (broken, "bad", 0)])
    with db.session() as s:  # the program as the controller reads it back: its files
        stored = s.get(ProgramRow, good.id)
        assert sorted(stored.files) == ["order.py", "pack.py", "place.py"]
        codes = {good.id: stored.code, bad.id: s.get(ProgramRow, bad.id).code}
    shutil.rmtree(tmp_path / "controller")  # only the database holds the problem now
    worker = start_worker(broker, queue, tmp_path / "worker")
    executor = CeleryExecutor(db, broker, queue)

    async def go() -> list[EvalResult]:
        try:
            return [await asyncio.wait_for(executor.evaluate(make_job(
                problem, codes[pid], cfg.evaluation, program_id=pid, evaluation_id=eid)), 120)
                for pid, eid in ((good.id, good_eid), (bad.id, bad_eid))]
        finally:
            await executor.aclose()

    try:
        scored, refused = asyncio.run(go())
    finally:
        worker.stop()
    assert scored.ok, scored.error
    assert scored.score == pytest.approx(0.9148768030)  # first-fit decreasing, as in-process
    assert "t501 (501 items, capacity 1000): 194 bins" in scored.artifacts["feedback"]
    assert refused.score == 0.0 and "not a permutation" in refused.artifacts["feedback"]
    copies = list((tmp_path / "worker" / "worker").glob("problem-*"))
    assert len(copies) == 1 and (copies[0] / "evaluator.py").is_file()
    assert tree.read_folder(copies[0] / "initial_program") == tree.split(codes[good.id])
    with db.session() as s:
        assert [s.get(EvaluationRow, e).status for e in (good_eid, bad_eid)] == ["ok", "ok"]


class _QueueDepthAtWarning(logging.Handler):
    """Reads the queue's depth on the broker when the no-worker warning is logged."""

    def __init__(self, broker: str, queue: str) -> None:
        super().__init__(logging.WARNING)
        self.broker, self.queue, self.depth = broker, queue, None

    def emit(self, record: logging.LogRecord) -> None:
        if "no Celery worker serves" not in record.getMessage():
            return
        with kombu.Connection(self.broker) as conn:
            try:
                self.depth = conn.default_channel.queue_declare(self.queue, passive=True)[1]
            except Exception:  # noqa: BLE001 - not declared yet: nothing was sent
                self.depth = 0


def test_jobs_go_out_while_the_workers_are_asked_and_an_unserved_queue_is_warned(
        tmp_path: Path, db: Database) -> None:
    broker, queue = BROKERS["rabbitmq"], new_queue()
    problem = load_problem(tiny_problem(tmp_path / "tiny"))
    cfg = config(evaluation__executor="celery", evaluation__queue=queue)
    prog, eid = Ledger(db, create_run(db, problem, cfg), "celery").add_initial(
        problem.initial_code, "h")
    job = make_job(problem, prog.code, cfg.evaluation, program_id=prog.id, evaluation_id=eid)
    handler = _QueueDepthAtWarning(broker, queue)
    logging.getLogger("evoforge.celery").addHandler(handler)

    async def go() -> None:
        executor = CeleryExecutor(db, broker, queue)
        waiting = asyncio.create_task(executor.evaluate(job))
        deadline = time.monotonic() + 30
        while handler.depth is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        waiting.cancel()
        await executor.aclose()

    try:
        asyncio.run(go())
    finally:
        logging.getLogger("evoforge.celery").removeHandler(handler)
    assert handler.depth == 1  # warned (inspecting takes a second), and the job was already sent
