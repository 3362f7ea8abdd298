"""What the engine tells the outside while it drives a run: progress snapshots for displays, and
the errors that stop a run before it starts."""

from __future__ import annotations

from dataclasses import dataclass

from service.evolution.budget import Counters
from service.evolution.training import RoundProgress


class RunBusy(RuntimeError):
    """Another live controller holds the run's lease."""


@dataclass
class Progress:
    """A snapshot for progress displays."""

    run_id: int
    status: str
    counters: Counters
    in_flight: int
    budget_iterations: int | None
    tokens_per_s: float
    rejected: int = 0
    duplicates: int = 0
    training: RoundProgress | None = None  # set while an RL round runs


class InitialProgramFailed(RuntimeError):
    """The problem's initial program does not evaluate; nothing can evolve from it."""
