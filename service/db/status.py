"""Every status and outcome a row can have, as enums, and the moves a run's status may make.

The values are the strings stored in the database (a StrEnum compares equal to its string), so
rows written before these enums read back unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run stands."""

    CREATED = "created"      # stored, not started (the API's start=false)
    QUEUED = "queued"        # waiting for a controller to claim it
    RUNNING = "running"      # an engine drives it (or a dead controller left it: claimable)
    PAUSED = "paused"        # stopped with a reason (Ctrl-C, LLM down, request); resumable
    COMPLETED = "completed"  # a budget, the target or stagnation ended it; resumable with more
    STOPPED = "stopped"      # stopped by request; final
    FAILED = "failed"        # cannot run (initial program fails, bad config); resumable once fixed


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)  # what controllers claim; counts in quotas
FINAL = (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED)  # event streams end here
RESUMABLE = (RunStatus.PAUSED, RunStatus.FAILED, RunStatus.COMPLETED)  # the API's resume
_MOVES: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.CREATED: frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.STOPPED}),
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.STOPPED,
                                 RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset({RunStatus.PAUSED, RunStatus.COMPLETED, RunStatus.STOPPED,
                                  RunStatus.FAILED, RunStatus.QUEUED}),
    RunStatus.PAUSED: frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.STOPPED}),
    RunStatus.COMPLETED: frozenset({RunStatus.QUEUED, RunStatus.RUNNING}),
    RunStatus.FAILED: frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.STOPPED}),
    RunStatus.STOPPED: frozenset({RunStatus.RUNNING}),  # `evoforge resume` by hand
}


class RunStatusError(RuntimeError):
    """A run was asked to move to a status its current status may not move to."""


def can_move(current: str, new: str) -> bool:
    """Returns True when a run in status current may be put in status new (or stays as it is)."""
    return current == new or RunStatus(new) in _MOVES[RunStatus(current)]


def sources(new: RunStatus) -> tuple[RunStatus, ...]:
    """Returns the statuses a run may move to new from (for guarded UPDATE ... WHERE status IN)."""
    return tuple(s for s in RunStatus if new in _MOVES[s])


class ProgramStatus(StrEnum):
    """Where a program's evaluation stands."""

    PENDING = "pending"        # stored, its evaluation queued or running
    EVALUATING = "evaluating"  # being scored (older rows; treated like pending)
    OK = "ok"                  # scored
    FAILED = "failed"          # its evaluation failed (failure_kind says how)
    DUPLICATE = "duplicate"    # same code as an earlier program (duplicate_of); never evaluated


UNFINISHED = (ProgramStatus.PENDING, ProgramStatus.EVALUATING)


class EvaluationStatus(StrEnum):
    """Where one evaluation attempt stands."""

    QUEUED = "queued"    # stored before any work starts
    RUNNING = "running"  # a worker took it
    OK = "ok"            # scored
    FAILED = "failed"    # scored as a failure
    LOST = "lost"        # its controller stopped before the result arrived; a new attempt follows


class SampleOutcome(StrEnum):
    """What became of one LLM completion."""

    PENDING = "pending"          # not stored as a proposal yet
    CHILD = "child"              # a new program, queued for evaluation
    REJECTED = "rejected"        # the edit gave no program (reason stored, sent back as feedback)
    TOO_SIMILAR = "too_similar"  # novelty rejection: too close to a program already stored
    DUPLICATE = "duplicate"      # same code as a stored program
    UNCHANGED = "unchanged"      # the parent again, up to comments and formatting


NO_PROGRAM = (SampleOutcome.REJECTED, SampleOutcome.TOO_SIMILAR)  # nothing stored to evaluate
NOT_NEW = (SampleOutcome.DUPLICATE, SampleOutcome.UNCHANGED)  # stored, not evaluated again


class ProgramKind(StrEnum):
    """How a program came to be."""

    INITIAL = "initial"    # the problem's initial program
    MUTATION = "mutation"  # a child of an LLM answer (mutation or crossover prompt)
    MIGRANT = "migrant"    # a copy of a program on another island
    RESEED = "reseed"      # the program an island reset started the island from
