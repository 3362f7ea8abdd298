"""The metrics /metrics reads from the database (and the broker) at scrape time, so they never
drift from the rows: runs by status, per-run totals, queue depth and age, workers alive,
controller leases, external RL rounds. Events (LLM latency, evaluation durations) are counted
where they happen instead (service/telemetry/metrics.py).

Per-run series are bounded: the runs queued or running, and those that finished within the last
hour, at most MAX_RUNS of them (the newest); their labels are run_id and model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, or_, select

from service.db import Database
from service.db.fleet import members, queue_stats
from service.db.models import RLRoundRow, RunRow, utcnow
from service.db.session import DB_DOWN
from service.db.status import ACTIVE, RunStatus
from service.execution.broker import messages
from service.settings import Settings

log = logging.getLogger("evoforge.metrics")
RECENT_S = 3600.0
MAX_RUNS = 100
RUN_LABELS = ["run_id", "model"]
RUN_TOTALS = (  # (metric, help, run column); all monotonic over a run's life: counters
    ("evoforge_run_iterations", "Child programs proposed by the run", "iterations"),
    ("evoforge_run_llm_calls", "LLM calls of the run", "llm_calls"),
    ("evoforge_run_evaluations", "Evaluations of the run", "evaluations"),
    ("evoforge_run_failed_evaluations", "Failed evaluations of the run", "failed"),
    ("evoforge_run_cost", "LLM cost of the run (prices per 1k tokens)", "cost"),
)


def run_model(config: dict[str, Any]) -> str:
    """Returns the model label of a run: the named model it uses, its model (a file's name), its
    backend, or "ensemble"."""
    llm = config.get("llm") or {}
    if llm.get("models"):
        return "ensemble"
    name = llm.get("use") or llm.get("model") or llm.get("backend") or "unknown"
    return Path(str(name)).name[:64]


class DatabaseCollector:
    """A prometheus_client collector that queries the database when scraped."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings

    def describe(self) -> list[Any]:
        """Returns nothing: registering must not query the database."""
        return []

    def collect(self) -> Iterator[Any]:
        """Yields the database's families (evoforge_database_up 0 alone when it is down)."""
        up = GaugeMetricFamily("evoforge_database_up", "1 when the database answered the scrape")
        try:
            with self.db.session() as s:
                families = list(self._families(s))
        except DB_DOWN as exc:
            log.warning("metrics: database unreachable: %s", str(exc).splitlines()[0])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        yield from self._broker()

    def _families(self, s: Any) -> Iterator[Any]:
        now = utcnow()
        runs = GaugeMetricFamily("evoforge_runs", "Runs by status", labels=["status"])
        counts = dict(s.execute(select(RunRow.status, func.count()).group_by(RunRow.status)).all())
        for status in RunStatus:
            runs.add_metric([status.value], counts.get(status, 0))
        yield runs
        yield from self._runs(s, now)
        yield from self._queues(s, now)
        rounds = GaugeMetricFamily("evoforge_rl_external_rounds", "External RL rounds by status",
                                   labels=["status"])
        for status, n in s.execute(select(RLRoundRow.status, func.count())
                                   .group_by(RLRoundRow.status)):
            rounds.add_metric([status], n)
        yield rounds

    def _runs(self, s: Any, now: Any) -> Iterator[Any]:
        rows = s.execute(select(RunRow).where(or_(
            RunRow.status.in_(ACTIVE), RunRow.finished_at >= now - timedelta(seconds=RECENT_S)))
            .order_by(RunRow.id.desc()).limit(MAX_RUNS)).scalars().all()
        totals = {col: CounterMetricFamily(name, doc, labels=RUN_LABELS)
                  for name, doc, col in RUN_TOTALS}
        tokens = CounterMetricFamily("evoforge_run_tokens", "LLM tokens of the run (kind: prompt "
                                     "| completion)", labels=[*RUN_LABELS, "kind"])
        best = GaugeMetricFamily("evoforge_run_best_score", "Best score of the run so far",
                                 labels=RUN_LABELS)
        for run in rows:
            labels = [str(run.id), run_model(run.config or {})]
            for col, family in totals.items():
                family.add_metric(labels, float(getattr(run, col) or 0))
            tokens.add_metric([*labels, "prompt"], run.prompt_tokens or 0)
            tokens.add_metric([*labels, "completion"], run.completion_tokens or 0)
            if run.best_score is not None:
                best.add_metric(labels, run.best_score)
        yield from totals.values()
        yield tokens
        yield best

    def _queues(self, s: Any, now: Any) -> Iterator[Any]:
        window = self.settings.heartbeat_window_s
        found = members(s, now, window)
        stats = queue_stats(s, now)
        depth = GaugeMetricFamily("evoforge_queue_depth", "Evaluations waiting (queued, not "
                                  "started) per queue", labels=["queue"])
        running = GaugeMetricFamily("evoforge_queue_running", "Evaluations running per queue",
                                    labels=["queue"])
        age = GaugeMetricFamily("evoforge_queue_oldest_age_seconds", "Age of the oldest waiting "
                                "evaluation per queue (0: none waits)", labels=["queue"])
        alive = GaugeMetricFamily("evoforge_workers_alive", "Workers heartbeating within the "
                                  "window, per queue they serve", labels=["queue"])
        fleet = GaugeMetricFamily("evoforge_fleet_members", "Workers and controllers by state "
                                  "(alive | lost | stopped)", labels=["kind", "state"])
        leases = GaugeMetricFamily("evoforge_controller_leases", "Runs whose lease a controller "
                                   "holds", labels=["controller"])
        workers = [m for m in found if m.kind == "worker" and m.state == "alive"]
        names = set(stats) | set(self.settings.allowed_queues) | {q for m in workers
                                                                   for q in m.queues}
        for name in sorted(names):
            q = stats.get(name)
            depth.add_metric([name], q.waiting if q else 0)
            running.add_metric([name], q.running if q else 0)
            age.add_metric([name], (q.oldest_waiting_s or 0.0) if q else 0.0)
            alive.add_metric([name], sum(name in m.queues for m in workers))
        for kind in ("worker", "controller"):
            for state in ("alive", "lost", "stopped"):
                fleet.add_metric([kind, state], sum(m.kind == kind and m.state == state
                                                    for m in found))
        for m in found:
            if m.kind == "controller" and m.state == "alive":
                leases.add_metric([m.name], len(m.runs))
        yield from (depth, running, age, alive, fleet, leases)

    def _broker(self) -> Iterator[Any]:
        if not broker_configured(self.settings):
            return
        up = GaugeMetricFamily("evoforge_broker_up", "1 when the Celery broker answered")
        ready = GaugeMetricFamily("evoforge_broker_messages", "Ready messages per Celery queue "
                                  "on the broker", labels=["queue"])
        try:
            for name, n in messages(self.settings.broker, self.settings.allowed_queues).items():
                ready.add_metric([name], n)
        except Exception as exc:  # noqa: BLE001 - kombu raises many kinds for "down"
            log.warning("metrics: broker unreachable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield ready


def broker_configured(settings: Settings) -> bool:
    """Returns True when the server was given a broker (EVOFORGE_BROKER) and API runs may use
    Celery: then readiness and metrics ask it."""
    return "broker" in settings.model_fields_set and "celery" in settings.allowed_executors
