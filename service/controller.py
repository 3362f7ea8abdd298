"""The controller loop: claims queued or orphaned runs through their lease and drives them.

Several controllers may run against one database; a run's lease row makes exactly one of them
drive it. A controller that dies leaves its lease to expire (at once for a dead process on the
same host) and another takes the run over; the engine restores everything from the rows.
Pause and stop requests arrive through `runs.control`, which this loop polls for its runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from sqlalchemy import select, update

from service.config import ConfigError
from service.db import Database
from service.db.fleet import Identity
from service.db.heartbeat import Heartbeat
from service.db.models import RunRow, utcnow
from service.db.queries import acquire_lease, controller_id, move_run, release_lease
from service.db.session import DB_DOWN
from service.db.status import ACTIVE, RunStatus, RunStatusError
from service.evolution.engine import Engine
from service.evolution.report import InitialProgramFailed, RunBusy
from service.llm.base import LLMError
from service.problems.load import ProblemError
from service.runs import drive
from service.settings import Settings

log = logging.getLogger("evoforge.controller")
FATAL = (InitialProgramFailed, ConfigError, ProblemError, LLMError, LookupError, RunStatusError)


@dataclass
class Controller:
    """Drives up to max_runs runs at once, polling the database every poll_s seconds."""

    db: Database
    settings: Settings
    max_runs: int = 4
    poll_s: float = 1.0
    owner: str = field(default_factory=controller_id)
    active: dict[int, asyncio.Task] = field(default_factory=dict)

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Claims and drives runs until stop is set (or forever); hands runs back on exit."""
        stop = stop or asyncio.Event()
        log.info("controller %s polling %s", self.owner, self.db.url)
        heartbeat = Heartbeat(self.db, Identity("controller", self.owner,
                                                concurrency=self.max_runs),
                              self.settings.heartbeat_s).start()
        try:
            while not stop.is_set():
                try:
                    claimed = await asyncio.to_thread(self._claim_some, self._free_slots())
                except DB_DOWN as exc:
                    log.warning("database unreachable, retrying: %s", str(exc).splitlines()[0])
                    claimed = []
                for run_id in claimed:
                    self.active[run_id] = asyncio.create_task(self._drive(run_id))
                with contextlib.suppress(TimeoutError):  # no stop: poll again
                    await asyncio.wait_for(stop.wait(), self.poll_s)
        finally:
            for task in list(self.active.values()):
                task.cancel()
            await asyncio.gather(*self.active.values(), return_exceptions=True)
            await asyncio.to_thread(heartbeat.stop)

    def _free_slots(self) -> int:
        for run_id, task in list(self.active.items()):
            if task.done():
                del self.active[run_id]
        return self.max_runs - len(self.active)

    def _claim_some(self, slots: int) -> list[int]:
        """Takes the leases of up to slots claimable runs; returns their ids."""
        if slots <= 0:
            return []
        with self.db.session() as s:
            ids = list(s.scalars(select(RunRow.id).where(RunRow.status.in_(ACTIVE))
                                 .order_by(RunRow.id)))
        claimed: list[int] = []
        for run_id in ids:
            if len(claimed) >= slots:
                break
            if run_id not in self.active and self._claim(run_id):
                claimed.append(run_id)
        return claimed

    def _claim(self, run_id: int) -> bool:
        with self.db.session() as s:
            if not acquire_lease(s, run_id, self.owner):
                return False
        with self.db.session() as s:  # the API may have halted it meanwhile
            run = s.get(RunRow, run_id)
            if run is not None and run.status in ACTIVE:
                return True
            release_lease(s, run_id, self.owner)
            return False

    async def _drive(self, run_id: int) -> None:
        engines: list[Engine] = []
        watcher = asyncio.create_task(self._watch(run_id, engines))
        try:
            log.info("driving run %s", run_id)
            await drive(self.db, run_id, self.settings, on_engine=engines.append)
            await asyncio.to_thread(self._settle, run_id)
        except RunBusy:
            log.info("run %s is driven by another controller", run_id)
        except FATAL as exc:
            log.warning("run %s failed: %s", run_id, exc)
            await asyncio.to_thread(self._fail, run_id, str(exc))
        except DB_DOWN as exc:  # the run stays claimable; the next poll retries it
            log.warning("run %s lost the database, will retry: %s", run_id,
                        str(exc).splitlines()[0])
        except asyncio.CancelledError:
            await asyncio.to_thread(self._hand_back, run_id)
            raise
        except Exception as exc:  # one crashed run is failed; the others go on
            log.exception("run %s crashed", run_id)
            await asyncio.to_thread(self._fail, run_id, f"controller error: {exc!r}")
        finally:
            watcher.cancel()

    async def _watch(self, run_id: int, engines: list[Engine]) -> None:
        """Passes a pause or stop request of the run to its engine."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                control = await asyncio.to_thread(self._control, run_id)
            except DB_DOWN:
                continue
            if control and engines:
                engines[0].request_pause(f"{control} requested")

    def _control(self, run_id: int) -> str | None:
        with self.db.session() as s:
            return s.scalar(select(RunRow.control).where(RunRow.id == run_id))

    def _settle(self, run_id: int) -> None:
        """Turns a requested stop or pause into the run's final status."""
        with self.db.session() as s:
            control = s.get(RunRow, run_id).control
            if control == "stop":
                move_run(s, run_id, RunStatus.STOPPED, finished_at=utcnow(),
                         stop_reason="stopped by request")
            elif control == "pause":
                move_run(s, run_id, RunStatus.PAUSED, stop_reason="paused by request")
            s.execute(update(RunRow).where(RunRow.id == run_id).values(control=None))

    def _fail(self, run_id: int, reason: str) -> None:
        with self.db.session() as s:
            move_run(s, run_id, RunStatus.FAILED, stop_reason=reason, control=None,
                     finished_at=utcnow())
            release_lease(s, run_id, self.owner)

    def _hand_back(self, run_id: int) -> None:
        """On shutdown, leaves an interrupted run queued for another controller."""
        try:
            with self.db.session() as s:
                s.execute(update(RunRow).where(
                    RunRow.id == run_id, RunRow.control.is_(None),
                    RunRow.status.in_((RunStatus.PAUSED, RunStatus.RUNNING)))
                    .values(status=RunStatus.QUEUED))
                release_lease(s, run_id, self.owner)
        except DB_DOWN:
            log.warning("could not hand run %s back; its lease expires by itself", run_id)


async def run_controller(db: Database, settings: Settings, max_runs: int = 4,
                         poll_s: float = 1.0, stop: asyncio.Event | None = None) -> None:
    """Runs one controller in the current event loop until stop is set."""
    await Controller(db, settings, max_runs=max_runs, poll_s=poll_s).serve(stop)
