"""The instant parts of perf.controller_overhead: an LLM and an executor that take no time, and a
meter of the SQL the engine runs, so that what is left of an iteration is the controller's cost."""

from __future__ import annotations

import random
import time
from typing import Any

from sqlalchemy import event

from benchmarks.perf import synthetic
from evaluators.jobs import EvalJob, EvalResult
from service.llm.base import Completion, Message, Sampling
from service.llm.scripted import ScriptedBackend

ANSWER_SEED = 10_000_000  # children's code never equals a stored program's


class InstantLLM(ScriptedBackend):
    """The scripted LLM: a new full rewrite per completion; records when each call starts."""

    def __init__(self, on_first: Any, concurrency: int) -> None:
        super().__init__(lambda _messages, k: synthetic.answer(ANSWER_SEED + k),
                         max_concurrency=concurrency)
        self.on_first, self.starts, self.spent = on_first, [], 0.0

    async def generate(self, prompts: list[list[Message]], n: int,
                       sampling: Sampling) -> list[list[Completion]]:
        """Returns the scripted completions, adding the time spent to .spent."""
        started = time.perf_counter()
        if not self.starts:
            self.on_first(started)
        self.starts.append(started)
        out = await super().generate(prompts, n, sampling)
        self.prompts.clear()  # the test double keeps every prompt; a benchmark must not
        self.spent += time.perf_counter() - started
        return out


class InstantExecutor:
    """Executor protocol without a process: every job is scored at once with a random score."""

    writes_results = False

    def __init__(self, seed: int) -> None:
        self.rng, self.spent = random.Random(seed), 0.0

    async def evaluate(self, job: EvalJob) -> EvalResult:
        """Returns a scored result immediately."""
        started = time.perf_counter()
        score = self.rng.random()
        result = EvalResult(status="ok", score=score, metrics={"combined_score": score,
                            "spread": score / 10}, artifacts={"stdout": f"spread {score:.4f}\n"})
        self.spent += time.perf_counter() - started
        return result

    async def aclose(self, kill: bool = False) -> None:
        """Holds nothing."""


class SqlMeter:
    """Counts statements, the seconds spent executing them, and commits on one SQLAlchemy engine."""

    def __init__(self, engine: Any) -> None:
        self.count, self.seconds, self.commits = 0, 0.0, 0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "commit", self._commit)

    def _commit(self, _conn: Any) -> None:
        """Counts a commit."""
        self.commits += 1

    def _before(self, conn: Any, *_: Any) -> None:
        """Notes when a statement starts."""
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Any, *_: Any) -> None:
        """Counts a statement and the seconds it took."""
        self.count += 1
        self.seconds += time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
