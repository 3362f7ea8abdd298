"""What the engine asks of test-time training, and the default that never trains.

The engine calls a TrainingHook between calls; runs.py injects rl/'s schedule when rl.enabled, so
evolution/ never imports rl/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from service.db.models import ProgramRow

Paused = Callable[[], str | None]  # returns why the run is pausing, or None


@dataclass(frozen=True)
class RoundProgress:
    """Where a training round stands, for progress displays."""

    phase: str  # loading | training | saving | waiting for a trainer
    step: int = 0
    steps: int = 0
    reward_mean: float | None = None
    seconds: float = 0.0
    log: str | None = None  # the file the trainer libraries' own output goes to


Report = Callable[[RoundProgress], None]


def ignore(progress: RoundProgress) -> None:
    """A Report that shows nothing."""


class TrainingHook(Protocol):
    """A training schedule the engine consults; rounds run only while nothing is in flight."""

    def due(self, evaluations: int) -> bool:
        """Returns True when a round should run before more children are proposed."""
        ...

    async def train(self, evaluations: int, paused: Paused,
                    report: Report = ignore) -> list[ProgramRow]:
        """Runs one round and loads its adapter, telling report how it goes (from any thread);
        returns the programs the round stored."""
        ...

    async def settle(self, paused: Paused) -> None:
        """Before the engine reads the run: awaits a round left open, loads the newest adapter."""
        ...


class NoTraining:
    """The hook of a run without test-time RL."""

    def due(self, evaluations: int) -> bool:
        """Returns False: never due."""
        return False

    async def train(self, evaluations: int, paused: Paused,
                    report: Report = ignore) -> list[ProgramRow]:
        """Returns no programs."""
        return []

    async def settle(self, paused: Paused) -> None:
        """Does nothing."""
