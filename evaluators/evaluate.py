"""The one entry point of evaluators/ for the service: route a job to the way it is run.

A two-phase job (the program returns data, a trusted scorer scores it) goes to
evaluators/two_phase.py, a job with prefork=True to a warm fork server (evaluators/prefork.py),
anything else, and every check, to a fresh sandboxed process (evaluators/fresh.py). Each records
every way of dying as a failure with a kind and a reason; none raises for a candidate's behaviour.
"""

from __future__ import annotations

import sys

from evaluators.fresh import evaluate_fresh
from evaluators.jobs import EvalJob, EvalResult
from evaluators.pool import evaluate_preforked
from evaluators.two_phase import evaluate_two_phase


def evaluate_job(job: EvalJob, python: str = sys.executable, *, check: bool = False) -> EvalResult:
    """Returns the result of job, scored in a sandboxed process (check=True: load the evaluator)."""
    if job.two_phase:  # the program returns data; a separate trusted process scores it
        return evaluate_two_phase(job, python, check=check)
    if job.prefork and not check:  # a long-lived sandboxed evaluator forks per candidate
        return evaluate_preforked(job, python)
    return evaluate_fresh(job, python, check=check)
