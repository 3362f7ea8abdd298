"""REST API latency on a run with 10^5 stored programs, idle and under load; result ingest rate.

A throwaway PostgreSQL database gets one run filled with N programs (samples, evaluations) by
bulk inserts (perf.fill), then VACUUM ANALYZE (as autovacuum leaves a live database).
`evoforge serve` (no controller) answers on 127.0.0.1. For each query
this process times `--requests` sequential requests, first with the server otherwise idle, then
while a second process (`--load-threads` threads) keeps requesting program pages and lineage.
Reported: p50 / p99 per query and the loaded/idle ratio (no peer has a REST API). Then the
result ingest rate: evaluations per second that Ledger.record_result writes (program, evaluation,
run counters in one transaction), the write the controller makes for each finished evaluation,
with and without the API load.

    .venv/bin/python -m benchmarks.perf.api_latency [--programs 100000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select

from benchmarks.harness.paths import EVOFORGE, ROOT
from benchmarks.harness.store import out_file, write_json
from benchmarks.perf.databases import PG_ADMIN, postgres_database
from benchmarks.perf.fill import populate, problem_folder
from evaluators.jobs import EvalResult
from service.api.auth_tokens import create_token
from service.db import Database
from service.db.models import EvaluationRow, ProgramRow
from service.db.queries import add_problem, add_run
from service.evolution.ledger import Ledger, apply_result
from service.problems.load import load_problem


def _queries(run_id: int, ids: dict[str, int]) -> dict[str, str]:
    r = f"/api/runs/{run_id}"
    return {
        "programs page 1 (50, by id)": f"{r}/programs?limit=50",
        "programs top 50 by score": f"{r}/programs?status=ok&sort=-score&limit=50",
        "programs page at offset 50k": f"{r}/programs?limit=50&offset=50000",
        "programs page after id 50k (keyset)": f"{r}/programs?limit=50&after_id={ids['mid']}",
        "same, count=false (no total)": f"{r}/programs?limit=50&after_id={ids['mid']}&count=false",
        "programs island 2, score > 0.5": f"{r}/programs?island=2&min_score=0.5&limit=50",
        "program detail (code, diff)": f"/api/programs/{ids['deep']}",
        "ancestors of a late program": f"/api/programs/{ids['deep']}/ancestors",
        "descendants, 2 generations": f"/api/programs/{ids['mid']}/descendants?depth=2",
        "genealogy page (1000)": f"{r}/genealogy?limit=1000&after_id={ids['mid']}",
    }


def _fill(url: str, n: int, tmp: Path) -> tuple[int, str, dict[str, int], float]:
    """Stores a write token, the problem and one run of n programs; returns the run id, the
    token's secret, two program ids (late, middle) and the seconds the fill took."""
    db = Database(url)
    with db.session() as s:
        row, secret = create_token(s, "bench", "write")
        prob = add_problem(s, load_problem(problem_folder(tmp / "problem")))
        run = add_run(s, prob.id, {"budget": {"iterations": n}}, 0)
        prob.owner_token_id = run.owner_token_id = row.id
        run_id = run.id
    seconds = populate(db, run_id, n, islands=4, seed=0)  # then VACUUM ANALYZE, as autovacuum
    with db.session() as s:
        first, last = s.execute(select(func.min(ProgramRow.id), func.max(ProgramRow.id))
                                .where(ProgramRow.run_id == run_id)).one()
    db.close()
    return run_id, secret, {"deep": last - 7, "mid": first + (last - first) // 2}, seconds


def _time(client: httpx.Client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
    return out


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


def _load(base: str, secret: str, paths: list[str], threads: int, seconds: float) -> None:
    """Runs in the load process: threads requesting paths round-robin for seconds."""
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def work(k: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"},
                          timeout=60) as c:
            while time.monotonic() < stop:
                c.get(paths[(counts[k] + k) % len(paths)])
                counts[k] += 1
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({"requests": sum(counts), "seconds": seconds}))


def _ingest(url: str, run_id: int, count: int) -> float:
    """Returns evaluations/s written by Ledger.record_result for count pending programs."""
    db = Database(url)
    with db.session() as s:
        pids = s.scalars(insert(ProgramRow).returning(ProgramRow.id), [
            {"run_id": run_id, "code": f"x = {i}\n", "code_hash": uuid.uuid4().hex,
             "status": "pending", "iteration": 10**6 + i} for i in range(count)]).all()
        eids = s.scalars(insert(EvaluationRow).returning(EvaluationRow.id), [
            {"run_id": run_id, "program_id": pid, "status": "queued"} for pid in pids]).all()
    with db.session() as s:
        progs = list(s.scalars(select(ProgramRow).where(ProgramRow.id.in_(pids))))
    ledger = Ledger(db, run_id, "local")
    result = EvalResult(status="ok", score=0.5, metrics={"combined_score": 0.5}, duration_s=0.1)
    t = time.perf_counter()
    for prog, eid in zip(sorted(progs, key=lambda p: p.id), eids, strict=True):
        apply_result(prog, result, {"complexity": 1.0, "diversity": 0.2})
        ledger.record_result(prog, eid, result, [prog.id], [], False)
    rate = count / (time.perf_counter() - t)
    db.close()
    return rate


def measure(url: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Fills the database at url, serves it, and times every query idle and under load."""
    server = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            console.print(f"filling {args.programs} programs …")
            run_id, secret, ids, fill_s = _fill(url, args.programs, Path(tmp))
            port = 18000 + os.getpid() % 1000
            server = subprocess.Popen([*EVOFORGE, "serve", "--db", url, "--port", str(port),
                                       "--no-controller"], cwd=ROOT,
                                      env={**os.environ, "EVOFORGE_HOME": tmp})
            base = f"http://127.0.0.1:{port}"
            client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"},
                                  timeout=60)
            for _ in range(100):
                try:
                    if client.get("/api/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            queries = _queries(run_id, ids)
            idle = {k: _time(client, p, args.requests) for k, p in queries.items()}
            ingest_idle = _ingest(url, run_id, args.ingest)
            load_paths = [queries["programs page 1 (50, by id)"],
                          queries["ancestors of a late program"],
                          queries["programs top 50 by score"]]
            budget = 3 + 0.05 * args.requests * len(queries) * 4
            loader = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.perf.api_latency", "--load-threads",
                 str(args.load_threads), "--load-child", base, secret, json.dumps(load_paths),
                 str(budget)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
            time.sleep(1.0)
            loaded = {k: _time(client, p, args.requests) for k, p in queries.items()}
            ingest_loaded = _ingest(url, run_id, args.ingest)
            load_stats = json.loads(loader.communicate()[0].strip().splitlines()[-1])
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    return {"queries": list(queries), "idle": idle, "loaded": loaded, "ingest_idle": ingest_idle,
            "ingest_loaded": ingest_loaded, "load": load_stats, "fill_s": fill_s}


def report(m: dict[str, Any], args: argparse.Namespace, console: Console) -> list[dict[str, Any]]:
    """Prints the latency table and the ingest rates; returns the table's rows."""
    load_stats, idle, loaded = m["load"], m["idle"], m["loaded"]
    table = Table(title=f"API latency, PostgreSQL, {args.programs} programs "
                  f"(filled in {m['fill_s']:.0f} s); load: {args.load_threads} threads in a second "
                  f"process, {load_stats['requests'] / load_stats['seconds']:.0f} req/s")
    for col in ("query", "idle p50 ms", "idle p99 ms", "loaded p50 ms", "loaded p99 ms",
                "loaded/idle p50"):
        table.add_column(col, justify="right" if col != "query" else "left")
    rows: list[dict[str, Any]] = []
    for k in m["queries"]:
        r = {"query": k, "idle_p50": _pct(idle[k], 50), "idle_p99": _pct(idle[k], 99),
             "loaded_p50": _pct(loaded[k], 50), "loaded_p99": _pct(loaded[k], 99)}
        rows.append(r)
        table.add_row(k, f"{r['idle_p50']:.1f}", f"{r['idle_p99']:.1f}", f"{r['loaded_p50']:.1f}",
                      f"{r['loaded_p99']:.1f}", f"{r['loaded_p50'] / r['idle_p50']:.2f}")
    console.print(table)
    console.print(f"result ingest (Ledger.record_result, one transaction each): "
                  f"{m['ingest_idle']:.0f} evaluations/s idle, {m['ingest_loaded']:.0f} under "
                  "API load")
    return rows


def main() -> None:
    """Fills a throwaway PostgreSQL database, measures, prints and writes out/api_latency.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200, help="Timed requests per query.")
    ap.add_argument("--load-threads", type=int, default=4)
    ap.add_argument("--ingest", type=int, default=1000, help="Results written per ingest test.")
    ap.add_argument("--pg-url", default=PG_ADMIN)
    ap.add_argument("--load-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load_child:
        base, secret, paths, seconds = args.load_child
        _load(base, secret, json.loads(paths), args.load_threads, float(seconds))
        return
    console = Console(width=150)
    with postgres_database(args.pg_url, prefix="evoforge_bench_api") as url:
        m = measure(url, args, console)
    rows = report(m, args, console)
    write_json(out_file("api_latency.json"), {
        "programs": args.programs, "requests": args.requests, "rows": rows,
        "load": m["load"], "ingest_idle": m["ingest_idle"], "ingest_loaded": m["ingest_loaded"],
        "fill_s": m["fill_s"]})


if __name__ == "__main__":
    main()
