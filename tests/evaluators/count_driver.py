"""Runs one evaluation for tests/evaluators/observe.py: `python count_driver.py JOB_JSON OBSERVER`.

Prints one JSON line: the tasks the OBSERVER cgroup counts just before the evaluation (this driver,
what started it, and zombies the layer decision's probes left to it as subreaper until the
evaluation's sweep: none of them the evaluation's) and the evaluation's result. It imports only
the job contract, evaluate_job and layers.available_layers, so it also runs against an older
checkout of evaluators/ (PYTHONPATH) to measure that checkout the same way.
"""

import json
import sys
from pathlib import Path

from evaluators.evaluate import evaluate_job
from evaluators.isolation.layers import available_layers
from evaluators.jobs import EvalJob


def main() -> None:
    """Evaluates the job, then prints {"before": tasks, "result": result}."""
    job, observer = EvalJob(**json.loads(sys.argv[1])), Path(sys.argv[2])
    available_layers()  # decide (and probe) now, not inside the evaluation being counted
    before = int((observer / "pids.current").read_text())
    result = evaluate_job(job)
    print(json.dumps({"before": before, "result": result.to_dict()}, default=str), flush=True)


if __name__ == "__main__":
    main()
