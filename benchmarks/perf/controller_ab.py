"""Controller overhead per iteration, this checkout against the code of an earlier git ref, in
turns, on copies of one filled database.

A run is filled once per backend and size (perf.fill; 10^5 programs take minutes on PostgreSQL),
then every measurement starts from a fresh copy of it (a file copy for SQLite, `CREATE DATABASE
... TEMPLATE` for PostgreSQL): the two codes see the same rows, and the fill is paid once (the
old code's copy is first migrated down to its schema by this checkout's migrations). Each
measurement runs the real Engine of one tree (perf.controller_overhead's instant LLM and
executor) in a subprocess whose imports come from that tree; the trees alternate (old, new, new,
old, ...), so load from other work on the machine falls on both alike. Reported per tree: CPU ms
per iteration of the controller process (robust under load), SQL statements and commits per
iteration (counted by an SQLAlchemy event listener), and the wall overhead per iteration.

    .venv/bin/python -m benchmarks.perf.controller_ab --ref 8d2db8c [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import psutil
import psycopg
from alembic import command
from alembic.script import ScriptDirectory
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from benchmarks.harness.paths import ROOT
from benchmarks.harness.store import out_file, write_json
from benchmarks.perf.databases import PG_ADMIN, backend_url
from benchmarks.perf.fill import populate, problem_folder
from service.config import build_run_config
from service.db import Database
from service.db.session import alembic_config
from service.problems.load import load_problem
from service.runs import create_run

# Runs in the measured tree (cwd = that tree, so its `service` and `benchmarks` are imported).
CHILD = """
import json, sys
from pathlib import Path
import service
from benchmarks.perf.controller_overhead import _drive
from service.config import build_run_config
from service.db import Database
from service.problems.load import load_problem
a = json.loads(sys.argv[1])
assert Path(service.__file__).resolve().is_relative_to(Path.cwd().resolve()), service.__file__
problem = load_problem(Path(a["folder"]))
cfg = build_run_config(problem.run_defaults, a["overrides"])
db = Database(a["url"])
row = _drive(db, a["run_id"], problem, cfg, a["backend"], a["n"], a["seed"], False, 1)
db.close()
print("ROW " + json.dumps(row, default=str))
"""


def overrides(n: int, iterations: int, seed: int) -> dict[str, Any]:
    """Returns the run config of a filled run of n programs timed over `iterations` more."""
    return {"seed": seed, "llm": {"backend": "scripted", "max_tokens": 1024},
            "budget": {"iterations": n - 1 + iterations}, "evaluation": {"in_flight": 1}}


def export_tree(ref: str, into: Path) -> Path:
    """Writes the files of git ref into a folder (no checkout of this worktree changes)."""
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into)  # our own repository's files
    return into


@contextmanager
def filled(backend: str, pg_url: str, folder: Path, n: int, iterations: int,
           seed: int) -> Iterator[tuple[str, int]]:
    """Yields (template URL, run id) of a database filled with a run of n programs."""
    with backend_url(backend, pg_url) as url:
        problem = load_problem(folder)
        db = Database(url)
        try:
            cfg = build_run_config(problem.run_defaults, overrides(n, iterations, seed))
            run_id = create_run(db, problem, cfg)
            populate(db, run_id, n, cfg.search.num_islands, seed)
        finally:
            db.close()
        yield url, run_id


@contextmanager
def copy_of(template: str, pg_url: str) -> Iterator[str]:
    """Yields the URL of a fresh copy of the template database, dropped afterwards."""
    parsed = make_url(template)
    if parsed.get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "copy.db"
            shutil.copyfile(str(parsed.database), path)
            yield f"sqlite:///{path}"
        return
    name = f"evoforge_ab_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{parsed.database}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(tree: Path, url: str, run_id: int, folder: Path, backend: str, n: int,
            iterations: int, seed: int) -> dict[str, Any]:
    """Runs the engine of tree on url in a subprocess; returns its row."""
    args = {"url": url, "run_id": run_id, "folder": str(folder), "backend": backend, "n": n,
            "seed": seed, "overrides": overrides(n, iterations, seed)}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=tree, env=env,
                          check=False, capture_output=True, text=True, timeout=3600)
    rows = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode or not rows:
        raise SystemExit(f"measuring {tree} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(rows[-1])


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Returns the medians of the figures of one tree's measurements."""
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    return {"cpu_ms": med("cpu_ms_per_iter"), "sql": med("sql_per_iter"),
            "commits": med("commits_per_iter"),
            "wall_ms": statistics.median(r["overhead_ms"]["mean"] for r in rows),
            "cpu_runs": [round(r["cpu_ms_per_iter"], 2) for r in rows]}


def render(results: list[dict[str, Any]], ref: str, console: Console) -> None:
    """Prints old vs new per backend and size."""
    table = Table(title=f"Controller per iteration: {ref} (old) vs this checkout (new), "
                        "medians of alternated runs on copies of one filled database")
    for col in ("backend", "N", "code", "CPU ms", "CPU ms, each run", "SQL/iter", "commits/iter",
                "wall ms", "new ÷ old CPU"):
        table.add_column(col, justify="left" if col in ("backend", "code") else "right")
    for res in results:
        old, new = res["old"], res["new"]
        for label, s in (("old", old), ("new", new)):
            ratio = f"{new['cpu_ms'] / old['cpu_ms']:.2f}×" if label == "new" else ""
            table.add_row(res["backend"], f"{res['n']:,}", label, f"{s['cpu_ms']:.2f}",
                          " ".join(map(str, s["cpu_runs"])), f"{s['sql']:.2f}",
                          f"{s['commits']:.2f}", f"{s['wall_ms']:.2f}", ratio)
    console.print(table)
    console.print(f"load average {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}; CPU ms = "
                  "process time of the controller per iteration (LLM and evaluation instant); "
                  "wall ms = loop wall time less LLM and evaluation time, per iteration.")


def main() -> None:
    """Fills each backend and size once, then measures old and new in turns."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="git ref of the code to compare against")
    ap.add_argument("--sizes", default="10000", help="stored programs, comma-separated")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--iterations", type=int, default=200, help="timed iterations per run")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each code per case")
    ap.add_argument("--pg-url", default=PG_ADMIN)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    console = Console(width=160)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = export_tree(args.ref, Path(tmp) / "old")
        old_head = ScriptDirectory(str(old_tree / "migrations")).get_current_head()
        folder = problem_folder(Path(tmp) / "spread")
        for n in (int(s) for s in args.sizes.split(",")):
            for backend in args.backends.split(","):
                with filled(backend, args.pg_url, folder, n, args.iterations, args.seed) as (
                        template, run_id):
                    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
                    for i in range(args.rounds):
                        for label in (("old", "new") if i % 2 == 0 else ("new", "old")):
                            tree = old_tree if label == "old" else ROOT
                            with copy_of(template, args.pg_url) as url:
                                if label == "old":  # the schema (and hashes) the old code wrote
                                    command.downgrade(alembic_config(url), old_head)
                                row = measure(tree, url, run_id, folder, backend, n,
                                              args.iterations, args.seed)
                            runs[label].append(row)
                            console.print(f"{backend} N={n:,} {label}: "
                                          f"{row['cpu_ms_per_iter']:.2f} CPU ms/iter, "
                                          f"{row['sql_per_iter']:.2f} SQL/iter")
                results.append({"backend": backend, "n": n, "runs": runs,
                                "old": summary(runs["old"]), "new": summary(runs["new"])})
    render(results, args.ref, console)
    out = write_json(out_file("controller_ab.json"), {"args": vars(args), "results": results,
                                                      "load": psutil.getloadavg()})
    console.print(f"written: {out}")


if __name__ == "__main__":
    main()
