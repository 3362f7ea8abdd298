"""The out-of-process trainer (`evoforge trainer`): claims due rounds, trains, publishes adapters.

Runs whose config says rl.trainer = "external" do not train in their controller: it writes a
due round (service/rl/rounds.py) and waits. This process, typically on a GPU host, polls
for due rounds, claims each under a lease it keeps renewing, runs the same round as the inline
path (`train_round`: prompts from the run, rollouts stored and scored as the run's children, GRPO
steps, the adapter saved under --adapters and recorded), loads the adapter into the vLLM server
(runtime LoRA) when --llm-url is given, and marks the round done. The controller then loads the
adapter version from its row. An LLM server that is down leaves the adapter recorded and the
round done; loading it is retried on every poll until the server answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from sqlalchemy.exc import SQLAlchemyError

from service.config import LLMConfig
from service.db import Database
from service.db.queries import controller_id
from service.db.session import DB_DOWN
from service.llm.base import LLMError, LLMUnavailable
from service.rl.adapters import AdapterInfo, latest_adapter
from service.rl.grpo import train_round
from service.rl.rounds import (
    LEASE_S,
    Round,
    claim,
    due_rounds,
    finish,
    mark_served,
    renew,
    unserved_rounds,
)
from service.settings import Settings

log = logging.getLogger("evoforge.trainer")


class RoundLost(RuntimeError):
    """The trainer's claim on a round expired (or was taken); it must stop writing children."""


@dataclass(frozen=True)
class Outcome:
    """What this trainer did with one claimed round."""

    round: Round
    status: str  # done | failed | lost
    adapter: AdapterInfo | None = None
    seconds: float = 0.0
    reward_mean: float | None = None
    load_error: str | None = None
    error: str | None = None


class LeaseKeeper:
    """Renews a claim every lease_s / 4 seconds in a thread; check() is the rollouts' guard."""

    def __init__(self, db: Database, round_id: int, owner: str, lease_s: float) -> None:
        self.db, self.round_id, self.owner, self.lease_s = db, round_id, owner, lease_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                        name=f"lease-round-{round_id}")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                if not renew(self.db, self.round_id, self.owner, self.lease_s):
                    self.lost = True
                    return
            except SQLAlchemyError as exc:  # a database hiccup: the lease has room for retries
                log.warning("round %s: could not renew the claim: %s", self.round_id, exc)

    def check(self) -> None:
        """Raises RoundLost unless the claim still holds (renewing it: room for the writes)."""
        if self.lost or not renew(self.db, self.round_id, self.owner, self.lease_s):
            self.lost = True
            raise RoundLost(f"round {self.round_id}: the claim of {self.owner} expired or was "
                            "taken over; its controller has moved on")


@dataclass
class Trainer:
    """Claims and trains due rounds of external-trainer runs (all runs, or run_ids only)."""

    db: Database
    settings: Settings
    adapters_dir: Path
    llm_url: str | None = None
    run_ids: list[int] | None = None
    lease_s: float = LEASE_S
    owner: str = field(default_factory=controller_id)
    on_round: Callable[[Round], None] | None = None  # called when a round is claimed
    _server: Any = None

    def poll_once(self) -> list[Outcome]:
        """Retries pending adapter loads, then claims and trains every due round; returns them."""
        self.load_pending()
        outcomes = []
        for rnd in due_rounds(self.db, self.run_ids):
            if not claim(self.db, rnd.id, self.owner, self.lease_s):
                log.info("run %s: RL round %d was claimed by another trainer", rnd.run_id,
                         rnd.number)
                continue
            outcomes.append(self.train(rnd))
        return outcomes

    def serve(self, poll_s: float, stop: threading.Event) -> list[Outcome]:
        """Polls every poll_s seconds until stop is set; returns every round's outcome."""
        outcomes: list[Outcome] = []
        while not stop.is_set():
            try:
                outcomes += self.poll_once()
            except DB_DOWN as exc:
                log.warning("database unreachable, retrying in %.0f s: %s", poll_s,
                            str(exc).splitlines()[0])
            stop.wait(poll_s)
        return outcomes

    def train(self, rnd: Round) -> Outcome:
        """Trains one claimed round, publishes its adapter and closes the round."""
        with LeaseKeeper(self.db, rnd.id, self.owner, self.lease_s) as keeper:
            try:
                log.info("run %s: claimed RL round %d (%d GRPO steps, due at %d evaluations)",
                         rnd.run_id, rnd.number, rnd.steps, rnd.evaluations)
                if self.on_round is not None:
                    self.on_round(rnd)
                report = train_round(self.db, rnd.run_id, self.settings, steps=rnd.steps,
                                     adapters_dir=self.adapters_dir, guard=keeper.check)
            except RoundLost as exc:
                log.warning("run %s: RL round %d abandoned: %s", rnd.run_id, rnd.number, exc)
                return Outcome(rnd, "lost", error=str(exc))
            except KeyboardInterrupt:
                finish(self.db, rnd.id, self.owner, error="the trainer was stopped mid-round")
                raise
            except Exception as exc:  # the controller is told at once and evolves on
                log.exception("run %s: RL round %d failed", rnd.run_id, rnd.number)
                finish(self.db, rnd.id, self.owner, error=f"{type(exc).__name__}: {exc}")
                return Outcome(rnd, "failed", error=str(exc))
            load_error = self.load(report.adapter) if self.llm_url else None
            if not finish(self.db, rnd.id, self.owner, adapter_id=report.adapter.id,
                          served=self.llm_url is not None and load_error is None):
                log.warning("run %s: RL round %d expired before it finished; adapter %s is "
                            "recorded and the next round starts from it", rnd.run_id,
                            rnd.number, report.adapter.name)
                return Outcome(rnd, "lost", report.adapter, report.seconds, error="expired")
        if load_error:
            log.error("run %s: %s", rnd.run_id, load_error)
            mark_served(self.db, rnd.id, load_error)
        mean = report.reward_stats.get("mean")
        log.info("run %s: RL round %d done: adapter %s in %.0f s, reward mean %s%s", rnd.run_id,
                 rnd.number, report.adapter.name, report.seconds,
                 "-" if mean is None else f"{mean:.3f}",
                 f", loaded into {self.llm_url}" if self.llm_url and not load_error else "")
        return Outcome(rnd, "done", report.adapter, report.seconds, mean, load_error)

    def load(self, info: AdapterInfo) -> str | None:
        """Loads the adapter into the vLLM server (runtime LoRA); returns why not, or None."""
        try:
            self._backend().load_adapter(info.name, info.path)
        except LLMUnavailable as exc:
            msg = (f"LLM server down: {exc}; adapter {info.name} stays recorded and is loaded "
                   "when the server answers")
        except LLMError as exc:
            msg = f"LLM server refused adapter {info.name}: {exc}"
        else:
            return None
        return msg

    def load_pending(self) -> None:
        """Retries loading each run's newest adapter that the LLM server has not loaded yet."""
        if not self.llm_url:
            return
        for rnd in unserved_rounds(self.db, self.run_ids):
            info = latest_adapter(self.db, rnd.run_id)
            if info is None or info.id != rnd.adapter_id:
                continue
            error = self.load(info)
            mark_served(self.db, rnd.id, error)
            if error is not None and error != rnd.error:  # said once per new reason
                log.error("run %s: %s", rnd.run_id, error)
            elif error is None:
                log.info("run %s: adapter %s loaded into %s (retried)", rnd.run_id, info.name,
                         self.llm_url)

    def _backend(self) -> Any:
        """Returns the openai backend whose runtime-LoRA call loads adapters into the server."""
        if self._server is None:
            from service.llm.openai_compat import OpenAICompatBackend

            self._server = OpenAICompatBackend(LLMConfig(backend="openai", url=v1_url(
                self.llm_url or ""), model="-", timeout_s=30.0, retries=0))
        return self._server

    def close(self) -> None:
        """Closes the HTTP client to the LLM server, if one was opened."""
        if self._server is not None:
            import asyncio

            asyncio.run(self._server.aclose())
            self._server = None


def v1_url(url: str) -> str:
    """Returns an OpenAI-compatible base URL ending in /v1 (vLLM's routes live under it)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"
