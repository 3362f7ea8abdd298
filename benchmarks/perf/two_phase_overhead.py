"""Cost of trusted scoring: two-phase evaluation vs the same scorer inside the candidate's sandbox.

    .venv/bin/python -m benchmarks.perf.two_phase_overhead [--problems circle_packing,...] \
        [--repeats 10]

For each suite problem the initial program is scored `--repeats` times each way, in the same
command on the same machine: one-phase (the exported OpenEvolve entry imports the program and
calls scorer.py in one sandboxed process, as OpenEvolve would) and two-phase (the program in one
sandbox, scorer.py in a second one), each in a fresh process per evaluation and pre-forked
(`evaluation.prefork`: warm sandboxed servers fork per candidate; the servers' start is paid once,
before timing, and printed apart). Prints median wall time per evaluation and the two-phase /
one-phase ratios; writes out/two_phase.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from dataclasses import replace

from benchmarks.harness.paths import PROBLEMS
from benchmarks.harness.store import out_file, write_json
from evaluators import pool
from evaluators.evaluate import evaluate_job
from evaluators.isolation import layers
from service.config import build_run_config
from service.execution.base import make_job
from service.problems.export import export_openevolve
from service.problems.load import load_problem

SUITE = ("circle_packing,circle_packing_32,autocorrelation_first,autocorrelation_second,"
         "autocorrelation_third,min_max_distance_16,heilbronn_triangle_11")


def timed(job: object, repeats: int) -> tuple[float, float]:
    """Returns (median seconds, score) of scoring job repeats times."""
    times, score = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = evaluate_job(job)
        times.append(time.perf_counter() - started)
        if not result.ok:
            raise SystemExit(f"{job.problem_dir}: {result.error}")
        score = result.score
    return statistics.median(times), score


def main() -> None:
    """Prints the table and writes out/two_phase.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default=SUITE, help="comma-separated names under problems/")
    ap.add_argument("--repeats", type=int, default=10, help="evaluations per problem and path")
    args = ap.parse_args()
    rows = []
    print(f"sandbox layers: {', '.join(layers.active_names())}")
    print(f"{'problem':<24} {'1-phase ms':>10} {'2-phase ms':>10} {'ratio':>6} "
          f"{'1-ph pre-forked':>15} {'2-ph pre-forked':>15} {'ratio':>6} {'start ms':>8}  same")
    for name in args.problems.split(","):
        problem = load_problem(PROBLEMS / name)
        cfg = build_run_config(problem.run_defaults, source=name)
        two = replace(make_job(problem, problem.initial_code, cfg.evaluation), prefork=False)
        exported = out_file("openevolve") / name  # the OpenEvolve entry
        shutil.rmtree(exported, ignore_errors=True)
        export_openevolve(problem.path, exported)
        one = replace(two, scorer="", entry="", problem_dir=str(exported),
                      evaluator_file=str(exported / "evaluator.py"), score_metric="combined_score")
        (t1, s1), (t2, s2) = timed(one, args.repeats), timed(two, args.repeats)
        warm_one, warm_two = replace(one, prefork=True), replace(two, prefork=True)
        started = time.perf_counter()
        evaluate_job(warm_one)
        evaluate_job(warm_two)  # starts the produce and score servers
        start = time.perf_counter() - started
        (p1, _), (p2, sp) = timed(warm_one, args.repeats), timed(warm_two, args.repeats)
        pool.shutdown()
        metric_one = evaluate_job(replace(one, score_metric=problem.score_metric)).score
        same = metric_one == s2 == sp
        rows.append({"problem": name, "one_phase_s": t1, "two_phase_s": t2, "ratio": t2 / t1,
                     "one_phase_preforked_s": p1, "two_phase_preforked_s": p2,
                     "preforked_ratio": p2 / p1, "servers_start_s": start,
                     "same_score": same, "score": s2, "combined_score_one": s1})
        print(f"{name:<24} {t1 * 1e3:>10.0f} {t2 * 1e3:>10.0f} {t2 / t1:>6.2f} {p1 * 1e3:>15.0f} "
              f"{p2 * 1e3:>15.0f} {p2 / p1:>6.2f} {start * 1e3:>8.0f}  {same}")
    write_json(out_file("two_phase.json"), {"layers": layers.active_names(),
                                            "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
