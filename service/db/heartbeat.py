"""A daemon thread that keeps a worker's or controller's fleet row fresh (service/db/fleet.py)."""

from __future__ import annotations

import logging
import threading
from typing import Self

from service.db.fleet import Identity, beat, sign_off
from service.db.session import DB_DOWN, Database

log = logging.getLogger("evoforge.fleet")


class Heartbeat:
    """Writes who's heartbeat at once and then every interval_s seconds until stop().

    fork_safe: close the database connections after every beat, for a process that forks workers
    (a Celery worker's main process): a forked child must not inherit an open connection."""

    def __init__(self, db: Database, who: Identity, interval_s: float,
                 fork_safe: bool = False) -> None:
        self.db, self.who, self.interval_s, self.fork_safe = db, who, interval_s, fork_safe
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{who.kind}",
                                        daemon=True)
        self._failing = False

    def start(self) -> Self:
        """Starts beating; returns self."""
        self._thread.start()
        return self

    def stop(self, signed_off: bool = True) -> None:
        """Stops beating; signed_off records a clean stop (the member shows as stopped)."""
        self._stop.set()
        self._thread.join(timeout=10)
        if signed_off:
            try:
                with self.db.session() as s:
                    sign_off(s, self.who.name)
            except DB_DOWN as exc:
                log.warning("could not record that %s stopped: %s", self.who.name,
                            str(exc).splitlines()[0])
            finally:
                self._release()

    def _run(self) -> None:
        while True:
            self._beat()
            if self._stop.wait(self.interval_s):
                return

    def _beat(self) -> None:
        try:
            with self.db.session() as s:
                beat(s, self.who, self.interval_s)
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any one beat
            if not self._failing:  # said once per outage, not every beat
                why = "database unreachable" if isinstance(exc, DB_DOWN) else type(exc).__name__
                log.warning("heartbeat of %s not written (%s: %s); it shows as lost until one "
                            "is", self.who.name, why, (str(exc).splitlines() or [""])[0])
            self._failing = True
            return
        finally:
            self._release()
        if self._failing:
            log.warning("heartbeat of %s written again", self.who.name)
        self._failing = False

    def _release(self) -> None:
        if self.fork_safe:
            self.db.engine.dispose()
