"""service.db.status: the moves a run's status may make, and the groups the API and loop rely on."""

from __future__ import annotations

import itertools

import pytest

from service.db.status import (
    ACTIVE,
    FINAL,
    NO_PROGRAM,
    NOT_NEW,
    RESUMABLE,
    ProgramStatus,
    RunStatus,
    SampleOutcome,
    can_move,
    sources,
)

C, Q, R, P = RunStatus.CREATED, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED
D, S, F = RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED
# Every move a run may make, written out here rather than read from the module under test.
ALLOWED = {
    (C, Q), (C, R), (C, S),                  # started (or run by hand), or stopped unstarted
    (Q, R), (Q, P), (Q, S), (Q, F),          # claimed, or halted while waiting
    (R, P), (R, D), (R, S), (R, F), (R, Q),  # stopped by the loop, or handed back to the queue
    (P, Q), (P, R), (P, S),                  # resumed (API or CLI), or stopped
    (D, Q), (D, R),                          # resumed with a larger budget
    (F, Q), (F, R), (F, S),                  # resumed once fixed, or given up
    (S, R),                                  # `evoforge resume` by hand
}


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED))
def test_every_allowed_move_is_allowed(current: RunStatus, new: RunStatus) -> None:
    assert can_move(current, new)


def test_every_move_not_in_the_table_is_refused() -> None:
    refused = [(a, b) for a, b in itertools.product(RunStatus, RunStatus)
               if a != b and (a, b) not in ALLOWED]
    assert len(refused) == 7 * 6 - len(ALLOWED)
    assert [move for move in refused if can_move(*move)] == []


@pytest.mark.parametrize(("current", "new"), [
    (D, P),  # a completed run has nothing in flight to pause
    (S, Q),  # a stopped run is final for the API; only `evoforge resume` runs it again
    (C, D),  # a run never started cannot have completed
    (R, C),  # nothing goes back to created
    (F, P),
    (P, D),  # only a running engine completes a run
])
def test_some_moves_are_refused(current: RunStatus, new: RunStatus) -> None:
    assert not can_move(current, new)


def test_staying_in_a_status_is_always_allowed() -> None:
    assert all(can_move(status, status) for status in RunStatus)


def test_stored_strings_are_read_like_the_enums() -> None:
    assert can_move("paused", "queued") and not can_move("stopped", "queued")
    assert RunStatus("completed") is D and ProgramStatus.OK == "ok"
    with pytest.raises(ValueError, match="bogus"):
        can_move("bogus", "queued")


@pytest.mark.parametrize("new", list(RunStatus))
def test_sources_are_the_statuses_that_may_move_to_new(new: RunStatus) -> None:
    expected = tuple(s for s in RunStatus if (s, new) in ALLOWED)
    assert sources(new) == expected


def test_sources_guard_the_api_halts_and_resumes() -> None:
    assert sources(P) == (Q, R)  # a pause lands at once only on a queued run (running: control)
    assert sources(S) == (C, Q, R, P, F)
    assert sources(C) == ()
    assert all(can_move(status, Q) for status in RESUMABLE)  # POST /runs/{id}/resume queues it
    assert all(can_move(status, R) for status in ACTIVE + RESUMABLE)  # a controller claims it
    assert not set(ACTIVE) & set(FINAL)


def test_outcomes_that_store_no_new_program_are_not_children() -> None:
    assert SampleOutcome.CHILD not in NO_PROGRAM + NOT_NEW
    assert not set(NO_PROGRAM) & set(NOT_NEW)
    assert set(SampleOutcome) == {SampleOutcome.PENDING, SampleOutcome.CHILD,
                                  *NO_PROGRAM, *NOT_NEW}
