"""Cost of trusted scoring: two-phase evaluation vs the same scorer run inside the candidate's sandbox.

    .venv/bin/python benchmarks/two_phase_overhead.py [--problems circle_packing,...] [--repeats 10]

For each suite problem the initial program is scored `--repeats` times both ways, in the same
command on the same machine: one-phase (the exported OpenEvolve entry imports the program and calls
scorer.py in one sandboxed process, as OpenEvolve would) and two-phase (the program in one sandbox, scorer.py in a
second one). Prints median wall time per evaluation and the ratio; writes out/two_phase.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluators import layers
from evaluators.runner import evaluate_job
from service.config import build_run_config
from service.dispatch import make_job
from service.problem import load_problem
from service.problem_export import export_openevolve

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
    print(f"{'problem':<24} {'one-phase ms':>13} {'two-phase ms':>13} {'ratio':>6}  same score")
    for name in args.problems.split(","):
        problem = load_problem(ROOT / "problems" / name)
        cfg = build_run_config(problem.run_defaults, source=name)
        two = make_job(problem, problem.initial_code, cfg.evaluation)
        exported = ROOT / "benchmarks" / "out" / "openevolve" / name  # the OpenEvolve entry
        shutil.rmtree(exported, ignore_errors=True)
        export_openevolve(problem.path, exported)
        one = replace(two, scorer="", entry="", problem_dir=str(exported),
                      evaluator_file=str(exported / "evaluator.py"), score_metric="combined_score")
        (t1, s1), (t2, s2) = timed(one, args.repeats), timed(two, args.repeats)
        metric_one = evaluate_job(replace(one, score_metric=problem.score_metric)).score
        rows.append({"problem": name, "one_phase_s": t1, "two_phase_s": t2, "ratio": t2 / t1,
                     "same_score": metric_one == s2, "score": s2, "combined_score_one": s1})
        print(f"{name:<24} {t1 * 1e3:>13.0f} {t2 * 1e3:>13.0f} {t2 / t1:>6.2f}  {metric_one == s2}")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "two_phase.json").write_text(json.dumps({"layers": layers.active_names(),
                                                    "repeats": args.repeats, "rows": rows},
                                                   indent=1))


if __name__ == "__main__":
    main()
