"""Sandbox overhead per trivial evaluation, per layer combination: fresh process vs pre-forked.

Target (issue 3): <= 3 ms overhead per trivial evaluation with pre-forking.

A trivial program (`solve()` returns 1.0) is scored by the test fixture problem `good` through
`evaluators.evaluate.evaluate_job` (what the executors call), once with a fresh sandboxed process
per evaluation and once pre-forked (one warm server, a fork per candidate), under each combination
of layers (EVOFORGE_SANDBOX_LAYERS), back to back. Pre-forked, the pool keeps a pair of servers
that take turns for short evaluations back to back (evaluators/pool.py); "one server" is the same
loop with the pair off, measured in alternating halves in the same command. Overhead = time per
evaluation minus the same evaluation scored in this process (harness.score with the evaluator
already imported). The peer, OpenEvolve 0.4.1's
evaluation path (an in-process thread, no isolation), runs in the same command from its own venv
(benchmarks/.venv-openevolve, made by perf.controller_overhead or peers.vs_openevolve; skipped
without it). Medians and 10th percentiles in ms; the load average is printed because the other
users of this machine move the numbers.

Then, for the last combination, the per-step cost of a pre-forked evaluation (medians over
--steps evaluations by one warm server, from the server's answer): clean (the file sweep, after
the previous answer, off the critical path, as is the fork of the waiting child), start (the job
handed over until the child has read it), setup (rlimits, folder, environment), run, result (the
child's write and exit until the server sees it end), sweep (kill, reap), channel (the host's
frames and the pipe hops), the child's CPU ms and page faults (job_faults: those after its job
arrived; the rest it took while it waited, rehearsing), and the fork server's own (per
evaluation, read from /proc: each fault is a page it copies from the spare it shares them with):
counts that the load moves much less than wall time. Once back to back, once --gap-ms apart (as a
run's LLM call spaces them), then back to back by two servers taking turns (a pair).

    .venv/bin/python -m benchmarks.perf.sandbox_overhead [--fresh 40] [--forked 300] [--no-peer]
                                                         [--steps 300] [--gap-ms 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.harness.paths import ROOT
from benchmarks.harness.store import out_file, write_json
from benchmarks.harness.timing import median_p10_ms
from benchmarks.peers.launch import eval_timings
from evaluators import harness, pool, prefork
from evaluators.evaluate import evaluate_job
from evaluators.isolation import layers
from evaluators.jobs import EvalJob

GOOD = ROOT / "tests" / "fixtures" / "problems" / "good"
CODE = "def solve():\n    return 1.0\n"
COMBOS = ["rlimits", "rlimits,uid", "rlimits,bwrap,seccomp", "rlimits,uid,bwrap",
          "rlimits,uid,bwrap,seccomp"]


def job(forked: bool) -> EvalJob:
    """Returns the trivial job (pre-forked or not)."""
    return EvalJob(code=CODE, problem_dir=str(GOOD), evaluator_file=str(GOOD / "evaluator.py"),
                   timeout_s=30, prefork=forked)


def timed(n: int, forked: bool, pair: bool = True) -> tuple[list[float], float]:
    """Returns the seconds of n evaluations back to back (after two warm-ups, which start the
    server, and with pair the second of a pair: evaluators/pool.py) and the CPU seconds per
    evaluation of every process involved (this one, its children, the servers and the children
    they reaped): a figure the machine's other load moves much less. Closes the servers."""
    the_job = job(forked)
    gap = pool.PAIR_GAP_S
    pool.PAIR_GAP_S = gap if pair else 0.0
    try:
        for _ in range(2):
            first = evaluate_job(the_job)
            if not first.ok:
                raise SystemExit(f"the trivial evaluation failed: {first.error}")
        cpu_before = cpu_seconds()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            result = evaluate_job(the_job)
            times.append(time.perf_counter() - start)
            assert result.ok and result.score == 1.0, result.error
        return times, (cpu_seconds() - cpu_before) / n
    finally:
        pool.PAIR_GAP_S = gap
        pool.shutdown()


def alternated(n: int) -> dict[str, dict[str, float]]:
    """Returns the pre-forked medians with the pool's pair ("prefork") and with one server
    ("one"), n evaluations each, measured in alternating halves."""
    runs: dict[str, list] = {"prefork": [], "one": []}
    for _ in range(2):
        for mode, halves in runs.items():
            halves.append(timed(n // 2, True, pair=mode == "prefork"))
    return {mode: {**median_p10_ms([t for times, _ in halves for t in times]),
                   "cpu_ms": statistics.mean(cpu for _, cpu in halves) * 1000}
            for mode, halves in runs.items()}


def cpu_seconds() -> float:
    """Returns user + system CPU seconds of this process, its reaped children and the servers."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pool.idle_server_pids():
        try:
            fields = proc_stat(pid)
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def in_process(n: int) -> list[float]:
    """Returns the seconds of n evaluations in this process (evaluator imported once)."""
    the_job = job(False)
    module = harness.load_evaluator(the_job)  # the reference: no process, no isolation
    folder = Path(tempfile.mkdtemp(dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None))
    times = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            harness.score(the_job, folder / "program.py", module)
            times.append(time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return times


STEPS = ["clean", "start", "setup", "run", "result", "sweep", "channel", "child_cpu",
         "child_faults", "job_faults", "server_cpu", "server_faults"]


def step_costs(n: int, gap_s: float = 0.0, servers: int = 1) -> dict[str, float]:
    """Returns the median of each step (ms; child_faults: a count) over n evaluations by warm
    servers under the active layers, after a warm-up each, gap_s apart (0: back to back); with
    servers=2 the two take turns, as the pool's pair does."""
    the_job = job(True)
    started = [prefork.ForkServer(the_job, sys.executable) for _ in range(servers)]
    rows = []
    try:
        for server in started:
            server.evaluate(the_job)  # the warm-up
        own = [server.server_pid() for server in started]
        before = [server_usage(pid) for pid in own]
        for k in range(n):
            time.sleep(gap_s)
            server = started[k % servers]
            result = server.evaluate(the_job)
            assert result.ok and result.score == 1.0, result.error
            rows.append(server.steps)
        after = [server_usage(pid) for pid in own]
        cpu = sum(end[0] - start[0] for end, start in zip(after, before, strict=True))
        faults = sum(end[1] - start[1] for end, start in zip(after, before, strict=True))
    finally:
        for server in started:
            server.close()
    medians = {step: statistics.median(row.get(step, float("nan")) for row in rows)
               for step in STEPS[:-2]}
    return {**medians, "server_cpu": cpu * 1000 / n, "server_faults": faults / n}


def server_usage(pid: int | None) -> tuple[float, float]:
    """Returns the CPU seconds and minor page faults of the fork server process itself (not its
    children): the faults are the pages it copies from the spare it shares them with."""
    if pid is None:
        return float("nan"), float("nan")
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), float(fields[7])


def proc_stat(pid: int) -> list[str]:
    """Returns the fields of /proc/PID/stat after the command name (field 3 onward)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def python_pass(n: int) -> dict[str, float]:
    """Returns the time of a bare `python -c pass` (a floor for any fresh process)."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return median_p10_ms(times)


def main() -> None:
    """Measures every combination, prints the table, writes benchmarks/out/sandbox_overhead.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh", type=int, default=40, help="timed fresh-process evaluations")
    parser.add_argument("--forked", type=int, default=300, help="timed pre-forked evaluations")
    parser.add_argument("--combos", default=";".join(COMBOS),
                        help="layer combinations, separated by ';'")
    parser.add_argument("--no-peer", action="store_true", help="skip OpenEvolve")
    parser.add_argument("--steps", type=int, default=300,
                        help="evaluations for the per-step costs (0: skip)")
    parser.add_argument("--gap-ms", type=float, default=20, help="the per-step costs again with "
                        "this pause between evaluations (a run's LLM call): the server's work "
                        "after an answer is then off the next evaluation's path")
    args = parser.parse_args()
    logging.getLogger("evoforge.sandbox").setLevel(logging.ERROR)  # the switches are on purpose
    base = median_p10_ms(in_process(200))
    rows = []
    for combo in args.combos.split(";"):
        os.environ[layers.ENV_VAR] = combo
        layers.reset()
        active = ",".join(layers.active_names())
        row = {"asked": combo, "active": active}
        times, cpu = timed(args.fresh, False)
        row["fresh"] = {**median_p10_ms(times), "cpu_ms": cpu * 1000}
        row |= alternated(args.forked)
        rows.append(row)
    steps = {f"{gap:g} ms": step_costs(args.steps, gap / 1000) for gap in (0, args.gap_ms)} \
        if args.steps else None  # under the last combination
    if steps:
        steps["0 ms, a pair"] = step_costs(args.steps, 0.0, servers=2)
    os.environ.pop(layers.ENV_VAR, None)
    bare = python_pass(20)
    peer_stats = None if args.no_peer else eval_timings(GOOD / "evaluator.py", CODE, 300)
    load = os.getloadavg()
    table = Table(title=f"trivial evaluation, ms (load average {load[0]:.1f}, "
                        f"{os.cpu_count()} cores; in-process evaluation "
                        f"{base['median_ms']:.2f} ms)")
    for column in ("active layers", "fresh median", "fresh p10", "fresh CPU",
                   "pre-forked median", "pre-forked p10", "pre-forked CPU", "overhead (median)",
                   "fresh / pre-forked", "one server median", "one server overhead"):
        table.add_column(column, justify="left" if column == "active layers" else "right")
    for row in rows:
        fresh, forked = row["fresh"], row["prefork"]
        table.add_row(row["active"].replace("rlimits,reaper", "base"),
                      f"{fresh['median_ms']:.1f}", f"{fresh['p10_ms']:.1f}",
                      f"{fresh['cpu_ms']:.1f}", f"{forked['median_ms']:.2f}",
                      f"{forked['p10_ms']:.2f}", f"{forked['cpu_ms']:.2f}",
                      f"{forked['median_ms'] - base['median_ms']:.2f}",
                      f"{fresh['median_ms'] / forked['median_ms']:.1f}x",
                      f"{row['one']['median_ms']:.2f}",
                      f"{row['one']['median_ms'] - base['median_ms']:.2f}")
    console = Console(width=160)
    console.print(table)
    console.print(f"python -c pass: {bare['median_ms']:.1f} ms median")
    if steps:
        console.print(steps_table(steps, rows[-1]["active"], args.steps))
    if peer_stats:
        console.print(f"peer OpenEvolve 0.4.1 (in-process thread, no isolation): "
                      f"{peer_stats['median_ms']:.2f} ms median, {peer_stats['p10_ms']:.2f} p10")
    write_json(out_file("sandbox_overhead.json"), {
        "rows": rows, "in_process": base, "python_pass": bare, "peer": peer_stats,
        "steps": steps, "loadavg": load}, indent=2)


def steps_table(steps: dict[str, dict[str, float]], active: str, n: int) -> Table:
    """Returns the per-step table: a row per pause between evaluations (and for the pair), a
    column per step."""
    table = Table(title=f"one pre-forked evaluation, per step (median of {n}; layers {active}; "
                        "ms, faults: a count; clean runs after the answer)")
    table.add_column("pause between evaluations", justify="right")
    for step in STEPS:
        table.add_column(step, justify="right")
    table.add_column("critical path", justify="right")
    for gap, row in steps.items():
        path = sum(row[s] for s in ("start", "setup", "run", "result", "sweep", "channel"))
        table.add_row(gap, *(f"{row[s]:.0f}" if s.endswith("faults") else f"{row[s]:.2f}"
                                       for s in STEPS), f"{path:.2f}")
    return table


if __name__ == "__main__":
    main()
