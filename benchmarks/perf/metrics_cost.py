"""What Prometheus metrics cost, for perf.controller_overhead and perf.celery_throughput run with
`--metrics both`: the same measurement with metrics off and on, alternated `--repeat` times in one
command (medians compared), and the events one iteration counts, timed directly.

On a shared 2-core machine wall-clock runs differ by ±30 % from one to the next, far more than
the metrics cost; the alternation and medians narrow that, and the direct timing bounds it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness.paths import ROOT
from evaluators.isolation.layers import active_names
from service.telemetry import metrics

MODES = ("off", "on")


def modes_in_turn(i: int) -> tuple[str, ...]:
    """Returns the modes of the i-th repeat: off first, then on first, and so on (a machine that
    speeds up or slows down over the command favours neither)."""
    return MODES if i % 2 == 0 else MODES[::-1]


def set_metrics(on: bool) -> None:
    """Counts events in this process (as `evoforge controller --metrics-port` does) or not."""
    if on:
        metrics.enable()
    else:
        metrics.disable()


def iteration_events_us(n: int = 20_000) -> float:
    """Returns the microseconds the metric events of one loop iteration take: one LLM request
    (latency), one stored call (tokens, cost), one evaluation (status, duration, layers)."""
    metrics.enable()
    layers = active_names()
    started = time.perf_counter()
    for i in range(n):
        metrics.llm_request("bench", 0.01)
        metrics.llm_error("bench", "truncated", 0)
        metrics.llm_usage("bench", 200, 100, 0.0)
        metrics.evaluation("local", "ok", None, 0.001 * (i % 7), active_names())
    spent = time.perf_counter() - started
    return 1e6 * spent / n if layers is not None else 0.0


def worker_event_us(n: int = 20_000) -> float:
    """Returns the microseconds a worker's metric event for one evaluation takes in multiprocess
    mode (values written to an mmap'ed file), timed in a fresh process: in this one
    prometheus_client may already have chosen its single-process mode."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-m", "benchmarks.perf.metrics_cost", folder,
                               str(n)], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(done.stdout.split()[-1])


def _time_worker_events(folder: Path, n: int) -> float:
    metrics.enable(folder)
    layers = active_names()
    started = time.perf_counter()
    for i in range(n):
        metrics.evaluation("cpu", "ok", None, 0.001 * (i % 7), layers)
    return 1e6 * (time.perf_counter() - started) / n


def overhead(off: float, on: float, higher_is_better: bool) -> float:
    """Returns the metrics' overhead in percent (positive: metrics cost)."""
    return 100 * ((off - on) / off if higher_is_better else (on - off) / off)


def render_overhead(title: str, unit: str, rows: list[dict[str, Any]], higher_is_better: bool,
                    console: Console) -> None:
    """Prints one line per case: medians and best runs with metrics off and on, and the overhead
    of each (noise only ever slows a run down: the best runs are the steadier comparison)."""
    best = max if higher_is_better else min
    table = Table(title=title)
    for col in ("case", "runs", f"median off ({unit})", f"median on ({unit})", "overhead",
                f"best off ({unit})", f"best on ({unit})", "overhead (best)"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for r in rows:
        med = statistics.median(r["off"]), statistics.median(r["on"])
        top = best(r["off"]), best(r["on"])
        table.add_row(r["case"], f"{len(r['off'])} + {len(r['on'])}",
                      f"{med[0]:.2f}", f"{med[1]:.2f}",
                      f"{overhead(*med, higher_is_better):+.1f} %",
                      f"{top[0]:.2f}", f"{top[1]:.2f}",
                      f"{overhead(*top, higher_is_better):+.1f} %")
    console.print(table)


if __name__ == "__main__":  # worker_event_us's fresh process: FOLDER N
    print(f"{_time_worker_events(Path(sys.argv[1]), int(sys.argv[2])):.3f}")
