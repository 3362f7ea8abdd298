"""The loop of one run: sample parents, prompt the LLM, apply edits, dispatch evaluations, archive.

All state lives in the database; the engine's memory (archive, hash index, counters) is rebuilt
from it on start, so a killed run resumes where it stopped, losing nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from evaluators.jobs import EvalResult, FailureKind
from service.config import RunConfig
from service.db import Database
from service.db.models import ProgramRow, RunRow, utcnow
from service.db.queries import (
    acquire_lease,
    controller_id,
    hash_index,
    release_lease,
    renew_lease,
    scored_programs,
    unfinished_programs,
)
from service.db.status import (
    NO_PROGRAM,
    NOT_NEW,
    EvaluationStatus,
    ProgramKind,
    ProgramStatus,
    RunStatus,
)
from service.edits.apply import choose_format
from service.edits.identity import code_hash
from service.evolution.aids.hooks import SearchAids
from service.evolution.budget import Counters, stop_reason
from service.evolution.ledger import Ledger, apply_result, queue_of
from service.evolution.planner import Plan, Planner
from service.evolution.population import VALIDITY, Population
from service.evolution.prompts import answer_done, answer_guard, answer_tokens
from service.evolution.report import InitialProgramFailed, Progress, RunBusy
from service.evolution.training import NoTraining, RoundProgress, TrainingHook
from service.execution.base import Executor, ExecutorUnavailable, make_job
from service.llm.base import LLMBackend, LLMError, LLMUnavailable, Sampling
from service.problems.blocks import block_text
from service.problems.load import Problem
from service.telemetry import metrics
from service.telemetry.logs import log_context

log = logging.getLogger("evoforge.engine")
MAX_CONSECUTIVE_LLM_ERRORS = 3


class Engine:
    """Drives one run to a stop condition, writing every step to the database."""

    def __init__(self, db: Database, run_id: int, problem: Problem, cfg: RunConfig,
                 llm: LLMBackend, executor: Executor,
                 on_progress: Callable[[Progress], None] | None = None,
                 training: TrainingHook | None = None) -> None:
        self.db, self.run_id, self.problem, self.cfg = db, run_id, problem, cfg
        self.llm, self.executor, self.on_progress = llm, executor, on_progress
        self.ledger = Ledger(db, run_id, cfg.evaluation.executor, queue_of(cfg))
        self.owner = controller_id()
        self.fmt = choose_format(cfg.llm.answer_format, llm.small_model)
        self.population = Population(problem, cfg, self.ledger)
        self.archive, self.rows = self.population.archive, self.population.rows
        self.hashes: dict[str, int] = {}
        self.generations: dict[int, int] = {}
        self.rejected = self.duplicates = 0
        self.llm_errors = 0
        self._pause_reason: str | None = None
        self._stop_reason: str | None = None
        self.evals: set[asyncio.Task] = set()
        self.reserved = 0
        self._session_start = time.monotonic()
        self._elapsed_before = 0.0
        self._gen_tokens = 0
        self._gen_seconds = 0.0
        self.aids = SearchAids(self.ledger, problem, cfg, llm)  # optional search features
        self.training = training or NoTraining()  # test-time RL of the mutation model
        self.planner = Planner(problem, cfg, llm, self.fmt, self.archive, self.aids, self.rows)

    @property
    def pause_reason(self) -> str | None:
        """Returns why the run is pausing (None while it goes on)."""
        return self._pause_reason

    def request_pause(self, reason: str) -> None:
        """Asks the run to pause: nothing new is proposed, in-flight work finishes, the run is
        left paused with the first reason given."""
        if self._pause_reason is None:
            self._pause_reason = reason

    @property
    def counters(self) -> Counters:
        """Returns the run's totals (kept by the ledger)."""
        return self.ledger.counters

    async def run(self) -> RunRow:
        """Runs until a budget, the target or a pause; returns the final run row."""
        with self.db.session() as s:
            if not acquire_lease(s, self.run_id, self.owner):
                raise RunBusy(f"run {self.run_id} is being driven by another controller "
                              f"({s.get(RunRow, self.run_id).lease_owner}); wait or stop it")
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await self.training.settle(lambda: self.pause_reason)  # an external round left open
            self._restore()
            self.ledger.move_run(RunStatus.RUNNING, stop_reason=None,
                                   started_at=self.ledger.run().started_at or utcnow())
            self._resume_unfinished()
            await self._ensure_initial()
            await self._loop()
            return self._finish()
        except InitialProgramFailed as exc:  # the run cannot start; `resume` once it is fixed
            self.ledger.update_run(status=RunStatus.FAILED, stop_reason=str(exc),
                                   elapsed_s=self._elapsed(), finished_at=utcnow())
            raise
        except (asyncio.CancelledError, KeyboardInterrupt):
            self._interrupt()
            raise
        finally:
            heartbeat.cancel()
            for task in self.evals:
                task.cancel()
            with self.db.session() as s:
                release_lease(s, self.run_id, self.owner)

    def _restore(self) -> None:
        run = self.ledger.load_totals()
        self._elapsed_before = run.elapsed_s
        with self.db.session() as s:
            self.hashes = hash_index(s, self.run_id)
            for prog in scored_programs(s, self.run_id, VALIDITY):
                self.population.replay(prog)
                self.aids.restored_program(prog)
        self.aids.restore(lambda score: None if score is None else
                          self.problem.direction.fitness(score))
        self.population.warm()

    async def _ensure_initial(self) -> None:
        """Scores the starting programs, one island each in turn (and whatever a stopped
        controller left) before evolving."""
        with self.db.session() as s:
            initials = s.query(ProgramRow).filter_by(run_id=self.run_id, kind=ProgramKind.INITIAL
                                                     ).order_by(ProgramRow.id).all()
        if not initials:
            islands = len(self.population.archive.islands)
            added = self.ledger.add_initials([
                (seed.code, code_hash(seed.code), i % islands)
                for i, seed in enumerate(self.problem.starts)])
            for prog, eid in added:
                self.hashes.setdefault(prog.code_hash, prog.id)
                self._schedule(prog, eid)
            initials = [prog for prog, _ in added]
        if self.counters.best_score is not None:
            return
        await asyncio.gather(*self.evals)
        self.evals.clear()
        if self.pause_reason is not None:
            return
        stored = self.ledger.programs([p.id for p in initials])
        progs = [stored[p.id] for p in initials]
        check = f"run `evoforge problems check {self.problem.path}`"
        what = ("the initial program" if len(progs) == 1
                else f"all {len(progs)} starting programs")
        if self.counters.best_score is None:
            raise InitialProgramFailed(
                f"{what} of {self.problem.name} failed ({progs[0].failure_kind}): "
                f"{progs[0].failure_reason}; {check}")
        if all(p.failure_reason and not p.score for p in progs):  # scored 0 by its own error
            raise InitialProgramFailed(
                f"{what} of {self.problem.name} scored {progs[0].score!r} because its "
                f"evaluator reported an error: {progs[0].failure_reason}; fix the cause (a "
                f"missing module must be installed in the Python that runs evaluations), then "
                f"{check}")

    async def _loop(self) -> None:
        proposals: set[asyncio.Task] = set()
        loop = asyncio.get_running_loop()  # RL rounds report from their thread through it
        while True:
            reason = self.pause_reason or stop_reason(self.cfg.budget, self.counters,
                                                      self.problem, self._elapsed())
            training = reason is None and self.training.due(self.counters.evaluations)
            can_propose = (reason is None and len(proposals) < self.llm.max_concurrency
                           and len(self.evals) + self.reserved < self.cfg.in_flight())
            if can_propose and not training:
                proposals.add(asyncio.create_task(self._propose()))
                continue
            if training and not proposals and not self.evals:
                self._trained(await self.training.train(
                    self.counters.evaluations, lambda: self.pause_reason,
                    lambda p: loop.call_soon_threadsafe(self._emit, p)))
                self._emit()
                continue
            if not proposals and not self.evals:
                self._stop_reason = reason
                return
            done, _ = await asyncio.wait(proposals | self.evals,
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                proposals.discard(task)
                self.evals.discard(task)
                task.result()
            self._emit()

    def _answer_tokens(self, plans: list[Plan]) -> int:
        """Returns max_tokens for a call: for rewrites, sized to the largest code it rewrites."""
        llm = self.cfg.llm
        return llm.max_tokens if self.fmt != "rewrite" else max(
            answer_tokens(p.parent_code, p.target, self.llm.count_tokens, llm.block_token_factor,
                          llm.max_tokens) for p in plans)

    async def _propose(self) -> None:
        plans = self._plans()
        if not plans:
            return
        n = self.cfg.llm.n
        self.reserved += len(plans) * n
        call = self.counters.llm_calls
        sampling = Sampling(temperature=self.aids.temperature(self.counters.iterations),
                            top_p=self.cfg.llm.top_p, max_tokens=self._answer_tokens(plans),
                            seed=self.cfg.seed * 1_000_003 + call,
                            stop_when=answer_done if self.fmt == "rewrite" else None,
                            guard=answer_guard(self.fmt, self.cfg.llm.close_code))
        try:
            started = time.monotonic()
            batches = await self.llm.generate([p.messages for p in plans], n, sampling)
            took = time.monotonic() - started
            self._gen_seconds += took
        except LLMUnavailable as exc:
            metrics.llm_error(self.llm.model, "unavailable")
            self.request_pause(f"LLM unavailable: {exc}")
            return
        except LLMError as exc:
            metrics.llm_error(self.llm.model, "refused")
            self._llm_error(str(exc))
            return
        finally:
            self.reserved -= len(plans) * n
        self.llm_errors = 0
        flat = [c for batch in batches for c in batch]
        model = flat[0].model if flat else self.llm.model  # an ensemble: the member that answered
        metrics.llm_request(model, took)
        metrics.llm_error(model, "truncated", sum(c.truncated for c in flat))
        self.aids.annotate(flat, sampling)
        self._gen_tokens += sum(c.completion_tokens for c in flat)
        first = self.counters.iterations + 1
        proposals = [self.planner.proposal(first + i, plan, c) for i, (plan, c) in enumerate(
            (plan, c) for plan, batch in zip(plans, batches, strict=True) for c in batch)]
        self.reserved += len(proposals)  # screening awaits: keep their places in the budget
        try:
            await self.aids.screen(proposals, self.hashes, self.archive, self.planner.codes,
                                  block_text)
        finally:
            self.reserved -= len(proposals)
        for i, proposal in enumerate(proposals):  # numbered again: screening may have awaited
            proposal.iteration = self.counters.iterations + 1 + i
        children = self.ledger.add_call(proposals, self.hashes, uuid.uuid4().hex[:12])
        self.aids.after_call(proposals, children)
        for proposal, child in zip(proposals, children, strict=True):
            if child.outcome in NO_PROGRAM:
                self.rejected += 1
            elif child.outcome in NOT_NEW:
                self.duplicates += 1
            else:
                self.hashes[child.code_hash] = child.program_id
                self._schedule(child.program, child.evaluation_id)
            if proposal.iteration % self.cfg.search.migration_interval == 0:
                self.population.migrate(self.counters.iterations)
        self.population.reset_islands(self.aids.island_resets(
            self.archive, self.counters.iterations, self.counters.last_improvement_iteration),
            self.counters.iterations)
        await self.aids.scratchpad(self.counters.iterations)

    def _trained(self, programs: list[ProgramRow]) -> None:
        """Takes in the children a training round stored and scored, and the run's counters."""
        for prog in programs:
            self.hashes.setdefault(prog.code_hash, prog.id)
            if prog.status == ProgramStatus.OK:
                self.population.take_in(prog)
        self.ledger.load_totals()  # the round's calls, tokens and evaluations count in the budgets
        self._resume_unfinished()  # children a failed or expired round left unscored

    def _plans(self) -> list[Plan]:
        budget = self.cfg.budget.iterations
        room = None if budget is None else budget - self.counters.iterations - self.reserved
        return self.planner.plans(self.counters.llm_calls, room, self._llm_error)

    def _resume_unfinished(self) -> None:
        """Continues the evaluations a stopped controller left: results that workers wrote
        meanwhile are taken as they are; the rest are sent again (workers drop a message whose
        evaluation is already final) or, for the local pool, attempted anew."""
        pending = unfinished_programs_of(self.db, self.run_id)
        latest = self.ledger.latest_evaluations([p.id for p in pending])
        for prog in pending:
            ev = latest.get(prog.id)
            if ev is not None and ev.status in (EvaluationStatus.OK, EvaluationStatus.FAILED) and \
                    ev.result is not None:
                self._schedule(prog, ev.id, EvalResult.from_dict(ev.result))
            elif ev is not None and \
                    ev.status in (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING) and \
                    self.executor.writes_results:
                self._schedule(prog, ev.id)
            else:
                self._schedule(prog, self.ledger.reopen(prog.id))

    def _schedule(self, prog: ProgramRow, evaluation_id: int,
                  result: EvalResult | None = None) -> None:
        task = asyncio.create_task(self._evaluate(prog, evaluation_id, result))
        self.evals.add(task)

    async def _evaluate(self, prog: ProgramRow, evaluation_id: int,
                        result: EvalResult | None = None) -> None:
        with log_context(program_id=prog.id, evaluation_id=evaluation_id):
            await self._score(prog, evaluation_id, result)

    async def _score(self, prog: ProgramRow, evaluation_id: int,
                     result: EvalResult | None) -> None:
        written = result is not None or self.executor.writes_results
        if result is None:
            job = make_job(self.problem, prog.code, self.cfg.evaluation, program_id=prog.id,
                           evaluation_id=evaluation_id)
            try:
                result = await self.executor.evaluate(job)
            except ExecutorUnavailable as exc:  # the candidate stays pending; resume sends it
                self.request_pause(f"evaluation executor unavailable: {exc}")
                return
            except Exception as exc:  # an executor bug must not lose the candidate
                log.exception("executor failed on program %s", prog.id)
                result = EvalResult.failure(FailureKind.CRASH, f"executor error: {exc}")
                written = False
        if prog.kind == ProgramKind.INITIAL and result.past_gate() is not None:
            result = result.past_gate()  # no gate stops a run at its initial program
            log.warning("the initial program %s; children must pass the gate",
                        result.artifacts["cascade_gate"])
        if not result.ok:
            log.info("evaluation failed (%s): %s", result.error_kind,
                     ((result.error or "").strip().splitlines() or [""])[-1])
        feats = self.population.features(prog.code, result) if result.ok else {}
        apply_result(prog, result, feats)
        kept, evicted, best = self.population.add(prog) if result.ok else ([], [], False)
        fitness = self.problem.direction.fitness(prog.score) if result.ok else None
        self.aids.on_result(prog, result, fitness)
        self.ledger.record_result(prog, evaluation_id, result, kept, evicted, best,
                                  evaluation_written=written)
        if result.ok:
            self.rows.put(prog)

    def _llm_error(self, message: str) -> None:
        self.llm_errors += 1
        log.warning("LLM request failed (%d in a row): %s", self.llm_errors, message)
        if self.llm_errors >= MAX_CONSECUTIVE_LLM_ERRORS:
            self.request_pause(f"LLM requests keep failing: {message}")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(10)
            with self.db.session() as s:
                if not renew_lease(s, self.run_id, self.owner):
                    self.request_pause("another controller took the run over")
                s.get(RunRow, self.run_id).elapsed_s = self._elapsed()

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._session_start

    def _finish(self) -> RunRow:
        paused = self.pause_reason is not None
        self.ledger.move_run(
            RunStatus.PAUSED if paused else RunStatus.COMPLETED,
            stop_reason=self._stop_reason,
            elapsed_s=self._elapsed(), finished_at=None if paused else utcnow())
        self._emit()
        return self.ledger.run()

    def _interrupt(self) -> None:
        self.ledger.move_run(RunStatus.PAUSED, elapsed_s=self._elapsed(),
                             stop_reason="interrupted; `evoforge resume` continues it")

    def _emit(self, training: RoundProgress | None = None) -> None:
        if self.on_progress is None:
            return
        rate = self._gen_tokens / self._gen_seconds if self._gen_seconds else 0.0
        self.on_progress(Progress(
            run_id=self.run_id, status=RunStatus.RUNNING, counters=self.counters,
            in_flight=len(self.evals),
            budget_iterations=self.cfg.budget.iterations, tokens_per_s=rate,
            rejected=self.rejected, duplicates=self.duplicates, training=training))


def unfinished_programs_of(db: Database, run_id: int) -> list[ProgramRow]:
    """Returns the run's programs whose evaluation never finished."""
    with db.session() as s:
        return unfinished_programs(s, run_id)
