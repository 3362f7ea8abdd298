"""Evaluations per second end to end: Celery workers (1 and 2 processes, fresh vs pre-forked
sandbox) against the local pool, and OpenEvolve's evaluation path as the peer, in one command.

A trivial program (solve() returns 1.0) is scored N times. For Celery, each evaluation is a row in
PostgreSQL, a message on the broker, a worker delivery (attempt counter committed), a sandboxed
evaluation and a result written by the worker, read back by the controller's poller: the whole
path a run uses. The peer runs OpenEvolve 0.4.1's Evaluator.evaluate_program (no sandbox) in
benchmarks/.venv-openevolve when it exists (perf.controller_overhead makes it).

    .venv/bin/python -m benchmarks.perf.celery_throughput [--n 200] [--broker URL] [--quick]
                                                          [--metrics both | --pair both]

It also prints, for the 2-process pre-forked Celery path, when its first evaluation started and
how long the workers took (read from the evaluation rows), and the CPU time per evaluation of
each part (controller, worker tree, PostgreSQL, RabbitMQ), read from /proc before and after the
batch: on a busy machine wall-clock rates fall, but these stay comparable. --quick measures only
that path.

`--metrics both` measures that path with the worker's Prometheus metrics off and on (`evoforge
worker --metrics-port`: multiprocess mode, scraped every second while the batch runs), alternated
`--repeat` times, and prints the overhead (benchmarks.perf.metrics_cost). `--pair both` does the
same with each worker process's pre-forked servers kept one per problem (EVOFORGE_PREFORK_PAIR=0)
and paired (the default: evaluators/pool.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time

import httpx
import psutil
from rich.console import Console
from sqlalchemy import select

from benchmarks.harness.paths import ROOT
from benchmarks.harness.store import out_file, write_json
from benchmarks.peers.launch import eval_timings
from benchmarks.perf.databases import PG_ADMIN, postgres_database
from benchmarks.perf.metrics_cost import modes_in_turn, render_overhead, worker_event_us
from evaluators.jobs import EvalJob
from evaluators.pool import PAIR_VAR
from service.config import build_run_config
from service.db import Database
from service.db.models import EvaluationRow
from service.evolution.ledger import Ledger
from service.execution.base import make_job
from service.execution.celery_client import CeleryExecutor
from service.execution.local import LocalExecutor
from service.problems.load import load_problem
from service.runs import create_run
from tests.conftest import free_port
from tests.service.celery_helpers import descendants, new_queue, start_worker

PROBLEM = ROOT / "tests" / "fixtures" / "problems" / "good"


def jobs(db: Database, n: int, prefork: bool, executor: str) -> list[EvalJob]:
    """Stores n programs with queued evaluations; returns their jobs."""
    problem = load_problem(PROBLEM)
    cfg = build_run_config({"evaluation": {"prefork": prefork, "timeout_s": 10}})
    ledger = Ledger(db, create_run(db, problem, cfg), executor)
    out = []
    for i in range(n):
        code = problem.initial_code + f"\n# variant {i}\n"
        prog, eid = ledger.add_initial(code, f"h{i}")
        out.append(make_job(problem, code, cfg.evaluation, program_id=prog.id, evaluation_id=eid))
    return out


async def timed(executor: object, batch: list[EvalJob]) -> float:
    """Returns evaluations per second for scoring batch all at once."""
    start = time.perf_counter()
    results = await asyncio.gather(*(executor.evaluate(job) for job in batch))
    elapsed = time.perf_counter() - start
    await executor.aclose()
    bad = [r for r in results if not r.ok]
    if bad:
        raise SystemExit(f"{len(bad)} evaluations failed, e.g. {bad[0].error}")
    return len(batch) / elapsed


def celery_rate(db: Database, broker: str, n: int, concurrency: int, prefork: bool,
                cpu: dict[str, float] | None = None, metrics: bool = False,
                timeline: dict[str, float] | None = None, pair: bool = True) -> float:
    """Evaluations/s through a real `evoforge worker` with `concurrency` processes; with cpu,
    fills it with CPU ms per evaluation by part; with timeline, with when the batch's first
    evaluation started and how long the workers took (batch_timeline); with metrics, the worker
    counts them and its /metrics is scraped every second meanwhile; without pair, each worker
    process keeps one fork server per problem (EVOFORGE_PREFORK_PAIR=0)."""
    queue = new_queue()
    port = free_port()
    worker = start_worker(broker, queue, out_file("celery-worker"), concurrency=concurrency,
                          loglevel="WARNING", env={PAIR_VAR: "1" if pair else "0"},
                          args=("--metrics-port", str(port)) if metrics else ())
    stop = threading.Event()
    try:
        warm = jobs(db, 2 * concurrency, prefork, "celery")
        asyncio.run(timed(CeleryExecutor(db, broker, queue), warm))  # imports, pre-fork servers
        batch = jobs(db, n, prefork, "celery")
        if metrics:
            threading.Thread(target=scrape_every_second, args=(port, stop), daemon=True).start()
        before, began = cpu_seconds(worker.proc.pid), time.time()
        rate = asyncio.run(timed(CeleryExecutor(db, broker, queue), batch))
        after = cpu_seconds(worker.proc.pid)
        if cpu is not None:
            cpu.update({k: 1000 * (after[k] - before[k]) / n for k in after})
        if timeline is not None:
            timeline.update(batch_timeline(db, [job.evaluation_id for job in batch], began))
        return rate
    finally:
        stop.set()
        worker.stop()


def batch_timeline(db: Database, ids: list[int], began: float) -> dict[str, float]:
    """Returns, from the evaluation rows the workers wrote, when the first evaluation started
    (s after the batch was handed to the executor) and how long the workers took from the first
    start to the last finish."""
    with db.session() as s:
        rows = s.execute(select(EvaluationRow.started_at, EvaluationRow.finished_at)
                         .where(EvaluationRow.id.in_(ids))).all()
    starts = [row[0].timestamp() for row in rows if row[0] is not None]
    ends = [row[1].timestamp() for row in rows if row[1] is not None]
    if not starts or not ends:
        return {}
    return {"first start s": min(starts) - began, "workers busy s": max(ends) - min(starts)}


def scrape_every_second(port: int, stop: threading.Event) -> None:
    """Reads the worker's /metrics every second until stop, as a busy Prometheus would."""
    while not stop.wait(1.0):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).raise_for_status()


def cpu_seconds(worker_pid: int) -> dict[str, float]:
    """Returns CPU seconds used so far by this controller, the worker's process tree (reaped
    children included), PostgreSQL and RabbitMQ."""
    def used(proc: psutil.Process, children: bool) -> float:
        t = proc.cpu_times()
        return t.user + t.system + (t.children_user + t.children_system if children else 0.0)

    tree = 0.0
    for pid in [worker_pid, *descendants(worker_pid)]:
        with contextlib.suppress(psutil.Error):  # gone meanwhile
            tree += used(psutil.Process(pid), True)
    servers = {"postgres": 0.0, "rabbitmq": 0.0}
    for proc in psutil.process_iter(["name"]):
        part = {"postgres": "postgres", "beam.smp": "rabbitmq"}.get(proc.info["name"] or "")
        if part:
            with contextlib.suppress(psutil.Error):
                servers[part] += used(proc, False)
    return {"controller": used(psutil.Process(), False), "worker tree": tree, **servers}


def local_rate(db: Database, n: int, workers: int, prefork: bool) -> float:
    """Evaluations/s through the local pool (no broker, no worker-side writes)."""
    asyncio.run(timed(LocalExecutor(workers), jobs(db, 2 * workers, prefork, "local")))
    return asyncio.run(timed(LocalExecutor(workers), jobs(db, n, prefork, "local")))


def peer_rate(n: int) -> float | None:
    """Evaluations/s of OpenEvolve's evaluation path (one process, sequential), if installed."""
    timings = eval_timings(PROBLEM / "evaluator.py", (PROBLEM / "initial_program.py").read_text(),
                           n, timeout_s=600)
    return None if timings is None else 1000.0 / timings["median_ms"]


def main() -> None:
    """Prints the table and writes benchmarks/out/celery_throughput.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--pg", default=PG_ADMIN)
    parser.add_argument("--quick", action="store_true", help="Only celery, 2 processes, "
                        "pre-forked, with its CPU breakdown.")
    parser.add_argument("--metrics", choices=("off", "on", "both"), default="off",
                        help="The worker's Prometheus metrics; both: off and on alternated on "
                        "the --quick path, with the overhead.")
    parser.add_argument("--pair", choices=("on", "both"), default="on",
                        help="The pre-forked servers' pair (evaluators/pool.py); both: off and on "
                        "alternated on the --quick path, with the difference.")
    parser.add_argument("--repeat", type=int, default=5, help="--metrics or --pair both: runs "
                        "per mode")
    args = parser.parse_args()
    with postgres_database(args.pg) as url:
        db = Database(url)
        try:
            measure(db, args)
        finally:
            db.close()


def measure(db: Database, args: argparse.Namespace) -> None:
    """Measures every path on db and prints the table."""
    if args.metrics == "both" or args.pair == "both":
        alternated(db, args, "metrics" if args.metrics == "both" else "pair")
        return
    cpu: dict[str, float] = {}
    timeline: dict[str, float] = {}
    rate = celery_rate(db, args.broker, args.n, 2, True, cpu, metrics=args.metrics == "on",
                       timeline=timeline)
    if timeline:
        print(f"the first evaluation started {timeline['first start s']:.3f} s after the batch; "
              f"the workers scored all {args.n} in {timeline['workers busy s']:.2f} s")
    print(f"celery, 2 worker processes, pre-forked: {rate:.1f} evaluations/s "
          f"(load average {psutil.getloadavg()[0]:.1f}); CPU ms per evaluation:")
    for part, ms in {**cpu, "total": sum(cpu.values())}.items():
        print(f"  {part:<12} {ms:6.2f}")
    if args.quick:
        return
    rows = []
    for procs in (1, 2):
        for prefork in (False, True):
            mode = "pre-forked" if prefork else "fresh process"
            rows.append((f"celery, {procs} worker process(es), {mode}",
                         celery_rate(db, args.broker, args.n, procs, prefork)))
            rows.append((f"local pool, {procs} slot(s), {mode}",
                         local_rate(db, args.n, procs, prefork)))
    peer = peer_rate(min(args.n, 100))
    rows.append(("OpenEvolve 0.4.1 evaluator path, 1 process (no sandbox)",
                 float("nan") if peer is None else peer))
    width = max(len(name) for name, _ in rows)
    print(f"\n{'path':<{width}}  evaluations/s  vs peer")
    for name, rate in rows:
        ratio = rate / peer if peer else float("nan")
        print(f"{name:<{width}}  {rate:13.1f}  {ratio:7.2f}x")
    write_json(out_file("celery_throughput.json"), dict(rows))


def alternated(db: Database, args: argparse.Namespace, switch: str) -> None:
    """The --quick path with one switch off and on (the worker's metrics, or the fork servers'
    pair), alternated; prints the difference."""
    row: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(args.repeat):
        for mode in modes_in_turn(i):
            on = mode == "on"
            row[mode].append(celery_rate(db, args.broker, args.n, 2, True,
                                         metrics=on and switch == "metrics",
                                         pair=on or switch != "pair"))
    case = {"case": f"celery, 2 worker processes, pre-forked, n = {args.n}", **row}
    console = Console(width=150)
    title = {"metrics": "worker metrics off vs on",
             "pair": "one fork server per problem vs a pair (off vs on; overhead < 0: a gain)"}
    render_overhead(f"Celery throughput (evaluations/s), {title[switch]}", "eval/s", [case], True,
                    console)
    result = {"args": vars(args), "rows": [case]}
    if switch == "metrics":
        result["events_us_per_evaluation"] = cost = worker_event_us()
        console.print(f"the metric events of one evaluation in a worker (multiprocess mode), "
                      f"timed directly: {cost:.1f} µs")
    write_json(out_file(f"celery_throughput_{switch}.json"), result)


if __name__ == "__main__":
    main()
