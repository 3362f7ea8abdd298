"""Celery throughput, this checkout against the code of an earlier git ref, in turns.

Runs `benchmarks.perf.celery_throughput --quick` (2 worker processes, pre-forked sandbox, the
worker started from the same tree) in the old tree and in this checkout alternately (old, new,
new, old, ...), and prints evaluations/s and the CPU ms per evaluation of each part for both,
with the ratio new ÷ old: load from other work on the machine falls on both alike. The old tree
uses this checkout's evaluators/ (the sandbox binds only that folder), so the ref must not differ
from this checkout there; the comparison is of service/.

    .venv/bin/python -m benchmarks.perf.celery_ab --ref 8d2db8c [--n 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from benchmarks.harness.paths import ROOT
from benchmarks.harness.store import out_file, write_json
from benchmarks.perf.controller_ab import export_tree

PARTS = ("controller", "worker tree", "postgres", "rabbitmq", "total")


def quick(tree: Path, n: int) -> dict[str, float]:
    """Runs the --quick path of the tree; returns evaluations/s and CPU ms per part."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.perf.celery_throughput", "--quick",
                           "--n", str(n)], cwd=tree, env=env, check=False, capture_output=True,
                          text=True, timeout=1800)
    rate = re.search(r"pre-forked: ([\d.]+) evaluations/s", done.stdout)
    if done.returncode or rate is None:
        raise SystemExit(f"{tree}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    row = {"rate": float(rate.group(1))}
    for part in PARTS:
        found = re.search(rf"^\s+{part}\s+(-?[\d.]+)$", done.stdout, re.MULTILINE)
        row[part] = float(found.group(1)) if found else float("nan")
    return row


def main() -> None:
    """Alternates old and new; prints medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="git ref of the code to compare against")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each code")
    args = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = export_tree(args.ref, Path(tmp) / "old")
        if subprocess.run(["git", "diff", "--quiet", args.ref, "--", "evaluators"],
                          cwd=ROOT, check=False).returncode:
            raise SystemExit(f"evaluators/ differs from {args.ref}: this compares service/ only")
        shutil.rmtree(old / "evaluators")  # imported from this checkout, as the sandbox binds it
        for i in range(args.rounds):
            for label in ("old", "new") if i % 2 == 0 else ("new", "old"):
                row = quick(old if label == "old" else ROOT, args.n)
                runs[label].append(row)
                print(f"{label}: {row['rate']:.1f} evaluations/s, {row['total']:.2f} CPU ms/eval "
                      f"(load {psutil.getloadavg()[0]:.1f})", flush=True)
    med = {label: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
           for label, rows in runs.items()}
    print(f"\nmedians of {args.rounds} alternated runs each, n = {args.n}; {args.ref} = old")
    print(f"{'':<22}{'old':>9}{'new':>9}{'new÷old':>9}")
    for key in ("rate", *PARTS):
        name = "evaluations/s" if key == "rate" else f"CPU ms, {key}"
        o, n = med["old"][key], med["new"][key]
        print(f"{name:<22}{o:>9.2f}{n:>9.2f}{(n / o if o else float('nan')):>8.2f}×")
    print(f"load average {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    write_json(out_file("celery_ab.json"), {"args": vars(args), "runs": runs, "medians": med})


if __name__ == "__main__":
    main()
