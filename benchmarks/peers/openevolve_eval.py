"""Peer side of perf.sandbox_overhead and perf.celery_throughput: OpenEvolve 0.4.1's evaluation
path on one trivial program.

Runs with the python of benchmarks/.venv-openevolve (openevolve==0.4.1 there, none of its code in
this repository), from the repository root. Times `Evaluator.evaluate_program` (the program
written to a temporary file, the evaluator run in a thread of this process under a timeout, no
cascade) and prints one JSON object; imports nothing of evoforge.

    benchmarks/.venv-openevolve/bin/python -m benchmarks.peers.openevolve_eval EVALUATOR CODE_FILE N
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from openevolve.config import EvaluatorConfig
from openevolve.evaluator import Evaluator

from benchmarks.harness.timing import median_p10_ms


async def measure(evaluator_file: str, code: str, n: int) -> list[float]:
    """Returns the seconds each of n evaluations took (after one warm-up)."""
    evaluator = Evaluator(EvaluatorConfig(timeout=30, cascade_evaluation=False,
                                          parallel_evaluations=1), evaluator_file)
    await evaluator.evaluate_program(code, "warm-up")
    times = []
    for i in range(n):
        start = time.perf_counter()
        metrics = await evaluator.evaluate_program(code, f"p{i}")
        times.append(time.perf_counter() - start)
        if metrics.get("combined_score") != 1.0:
            raise SystemExit(f"unexpected metrics from the peer: {metrics}")
    return times


def main() -> None:
    """Prints {"median_ms", "p10_ms", "n"} for the peer's evaluation path."""
    logging.disable(logging.CRITICAL)
    evaluator_file, code_file, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(code_file) as f:
        code = f.read()
    print(json.dumps(median_p10_ms(asyncio.run(measure(evaluator_file, code, n)))))


if __name__ == "__main__":
    main()
