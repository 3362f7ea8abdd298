"""The local executor with real sandboxed evaluations: concurrency, matching, slots."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from evaluators.isolation import layers
from evaluators.jobs import EvalJob
from service.execution.local import LocalExecutor
from tests.conftest import REPO

GOOD = REPO / "tests" / "fixtures" / "problems" / "good"
TIMED_EVALUATOR = """
import importlib.util
import time


def evaluate(program_path):
    started = time.time()
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    value = module.solve()
    return {"combined_score": value, "started": started, "ended": time.time()}
"""


def sleeper(folder: Path, value: int, seconds: float, marker: Path | None = None) -> EvalJob:
    """Returns a job whose program sleeps, optionally writes the time it ended, and scores value."""
    note = f"open({str(marker)!r}, 'w').write(str(time.time()))" if marker else "pass"
    code = (f"import time\n\ndef solve():\n    time.sleep({seconds})\n    {note}\n"
            f"    return {value}\n")
    return EvalJob(code=code, problem_dir=str(folder), evaluator_file=str(folder / "evaluator.py"),
                   timeout_s=30)


@pytest.fixture
def timed(tmp_path: Path) -> Path:
    (tmp_path / "evaluator.py").write_text(TIMED_EVALUATOR)
    return tmp_path


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """Returns the largest number of (start, end) spans that overlap at one moment."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_local_executor_runs_two_of_four_jobs_at_a_time_and_matches_results(timed: Path) -> None:
    async def main() -> list:
        executor = LocalExecutor(2)
        try:
            jobs = [sleeper(timed, i, 1.0) for i in range(4)]
            return await asyncio.gather(*(executor.evaluate(job) for job in jobs))
        finally:
            await executor.aclose()

    results = asyncio.run(main())
    assert [r.score for r in results] == [0, 1, 2, 3]
    assert all(r.ok for r in results)
    assert most_at_once([(r.metrics["started"], r.metrics["ended"]) for r in results]) == 2


def test_a_cancelled_caller_keeps_its_slot_until_the_process_ends(
        timed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = timed / "first-ended"  # written outside the work dir: only the base sandbox allows it
    monkeypatch.setenv(layers.ENV_VAR, "rlimits")
    layers.reset()

    async def main() -> float:
        executor = LocalExecutor(1)
        first = asyncio.ensure_future(executor.evaluate(sleeper(timed, 1, 1.0, marker)))
        await asyncio.sleep(0.3)
        first.cancel()
        second = await executor.evaluate(sleeper(timed, 2, 0.0))
        await executor.aclose()
        return second.metrics["started"]

    try:
        second_started = asyncio.run(main())
    finally:
        monkeypatch.undo()
        layers.reset()
    assert second_started >= float(marker.read_text())


def test_closed_executor_refuses_new_jobs() -> None:
    async def main() -> None:
        executor = LocalExecutor(1)
        await executor.aclose()
        await executor.evaluate(sleeper(GOOD, 1, 0.0))

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(main())
