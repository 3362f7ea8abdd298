"""The engine's training hook: when rl.enabled, a GRPO + LoRA round every rl.every_n_children
evaluations (in a thread, or by an external `evoforge trainer`), and the new adapter hot-loaded
into the run's backend so the next children are written by the trained model."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from service.config import RLConfig
from service.db import Database
from service.db.models import ProgramRow, RunRow
from service.evolution.training import Report, RoundProgress, ignore
from service.llm.base import AdapterSupport, LLMBackend, LLMError, LLMUnavailable
from service.rl.adapters import AdapterInfo, latest_adapter, publish
from service.rl.grpo import train_round
from service.rl.rounds import FINAL, Round, create_round, expire, get_round, open_round, skip
from service.settings import Settings

log = logging.getLogger("evoforge.trainer")


class RLSchedule:
    """The engine's hook: when rl.enabled, a training round every rl.every_n_children
    evaluations, run only while nothing is in flight; the new adapter is hot-loaded into the
    run's backend, so the next children are written by the trained model."""

    def __init__(self, db: Database, run_id: int, rl: RLConfig, llm: LLMBackend,
                 settings: Settings) -> None:
        self.db, self.run_id, self.rl, self.llm = db, run_id, rl, llm
        self.settings = settings
        self._next: int | None = None
        self.poll_s = 1.0  # external: how often the round's row is read while waiting

    def due(self, evaluations: int) -> bool:
        """Returns True when a training round should run before more children are proposed."""
        if not self.rl.enabled:
            return False
        if self._next is None:
            self._next = (evaluations // self.rl.every_n_children + 1) * self.rl.every_n_children
        return evaluations >= self._next

    async def train(self, evaluations: int,
                    paused: Callable[[], str | None] = lambda: None,
                    report: Report = ignore) -> list[Any]:
        """Runs one round (in a thread, or by an external trainer) and publishes its adapter,
        telling report how it goes; returns the programs it added."""
        self._next = (evaluations // self.rl.every_n_children + 1) * self.rl.every_n_children
        with self.db.session() as s:
            last = s.scalar(select(func.max(ProgramRow.id)).where(
                ProgramRow.run_id == self.run_id)) or 0
            run = s.get(RunRow, self.run_id)
            budget = (run.config.get("budget") or {}).get("iterations")
        per_step = self.rl.group_size * self.rl.prompts_per_step
        steps = self.rl.steps if budget is None else min(
            self.rl.steps, (budget - run.iterations) // per_step)  # a round's children count
        if steps < 1:
            log.info("run %s: RL round skipped, the budget has no room for a step", self.run_id)
            return []
        if self.rl.trainer == "external":
            report(RoundProgress("waiting for a trainer", steps=steps))
            await self._external(create_round(self.db, self.run_id, evaluations, steps), paused)
            return self._since(last)
        try:
            done = await asyncio.to_thread(train_round, self.db, self.run_id, self.settings,
                                           steps, report=report)
        except Exception:  # a failed round must not stop the run: it is logged and skipped
            log.exception("run %s: RL training round failed; evolution goes on", self.run_id)
        else:
            await asyncio.to_thread(self._load, done.adapter, False)
        return self._since(last)

    def _since(self, last: int) -> list[Any]:
        """Returns the run's programs stored after program id last."""
        with self.db.session() as s:
            return list(s.scalars(select(ProgramRow).where(
                ProgramRow.run_id == self.run_id, ProgramRow.id > last).order_by(ProgramRow.id)))

    async def settle(self, paused: Callable[[], str | None] = lambda: None) -> None:
        """Before the engine touches the run's rows: waits for an external round an earlier
        controller left open (its trainer may be writing children now), then loads the run's
        newest adapter into the backend, so a resumed run goes on with its trained model."""
        found = await asyncio.to_thread(open_round, self.db, self.run_id)
        if found is not None:
            log.info("run %s: RL round %d is %s; waiting for it before evolving", self.run_id,
                     found.number, found.status)
            await self._external(found, paused)
        info = await asyncio.to_thread(latest_adapter, self.db, self.run_id)
        if self.rl.enabled and info is not None and self.llm.adapter != info.name:
            await asyncio.to_thread(self._load, info, False)

    async def _external(self, rnd: Round, paused: Callable[[], str | None]) -> None:
        """Waits while an external trainer claims and trains rnd; loads its adapter when done.

        A round nobody claims within rl.claim_timeout_s (or when the run is paused) is skipped;
        a claimed round whose lease runs out is expired. Either way evolution goes on."""
        deadline = time.monotonic() + self.rl.claim_timeout_s
        announced = rnd.status
        if rnd.status == "due":
            log.info("run %s: RL round %d due (%d steps); waiting for an `evoforge trainer` "
                     "to claim it (up to %.0f s)", self.run_id, rnd.number, rnd.steps,
                     self.rl.claim_timeout_s)
        while True:
            rnd = await asyncio.to_thread(get_round, self.db, rnd.id)
            if rnd.status == "training" and announced != "training":
                announced = "training"
                log.info("run %s: RL round %d claimed by trainer %s", self.run_id, rnd.number,
                         rnd.trainer)
            if rnd.status == "done":
                await asyncio.to_thread(self._use, rnd)
                return
            if rnd.status in FINAL:
                log.warning("run %s: RL round %d %s (%s); evolution goes on", self.run_id,
                            rnd.number, rnd.status, rnd.error)
                return
            late = time.monotonic() > deadline
            why = paused() or (f"no trainer claimed it within {self.rl.claim_timeout_s:.0f} s; "
                               "start `evoforge trainer`" if late else None)
            if rnd.status == "due" and why and skip(self.db, rnd.id, why):
                log.warning("run %s: RL round %d skipped: %s", self.run_id, rnd.number, why)
                return
            if rnd.lease_expired() and expire(self.db, rnd):
                log.warning("run %s: RL round %d expired: trainer %s stopped renewing its claim; "
                            "evolution goes on", self.run_id, rnd.number, rnd.trainer)
                return
            await asyncio.sleep(self.poll_s)

    def _use(self, rnd: Round) -> None:
        """Loads a finished external round's adapter into the run's backend."""
        info = latest_adapter(self.db, self.run_id)
        if info is None or info.id != rnd.adapter_id:
            log.warning("run %s: RL round %d is done but its adapter %s is not the newest "
                        "version; keeping %s", self.run_id, rnd.number, rnd.adapter_id,
                        self.llm.adapter)
            return
        if self._load(info, rnd.served_at is not None):
            log.info("run %s: RL round %d done; later children use adapter %s", self.run_id,
                     rnd.number, info.name)

    def _load(self, info: AdapterInfo, served: bool) -> bool:
        """Hot-loads info into the run's backend (served: the LLM server has it already)."""
        if self.llm.adapters is AdapterSupport.NONE:
            log.warning("run %s: the %s backend cannot hot-load adapters; %s is recorded but not "
                        "used", self.run_id, self.llm.name, info.name)
            return False
        try:
            if served and self.llm.adapters is AdapterSupport.SERVER:
                self.llm.load_adapter(info.name, None)  # the trainer loaded it into the server
            else:
                publish(self.llm, info)
        except (LLMError, LLMUnavailable, ValueError, OSError) as exc:  # keeps the adapter it had
            log.warning("run %s: could not load adapter %s: %s", self.run_id, info.name, exc)
            return False
        return True
