"""service.evolution.ledger: the one writer of a run's rows and totals, on SQLite and PostgreSQL.

After every write the totals in memory (the Counters the budgets read) equal the run row."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import exc, func, select
from sqlalchemy.exc import IntegrityError

from evaluators.jobs import EvalResult
from service.db import Database
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, ScratchpadRow
from service.db.status import (
    EvaluationStatus,
    ProgramStatus,
    RunStatus,
    RunStatusError,
    SampleOutcome,
)
from service.edits.identity import code_hash
from service.evolution.budget import TOTALS, Counters
from service.evolution.ledger import Ledger, apply_result
from service.llm.base import Completion
from service.problems.load import load_problem
from service.runs import create_run
from tests.service.driver import open_db
from tests.service.engine_helpers import config, tiny_problem
from tests.service.evolution.ledger_helpers import code, in_step, proposal, scored_initial


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Ledger:
    """Returns the ledger of a new run of the tiny problem (nothing stored yet)."""
    db = open_db(db_url)
    run_id = create_run(db, load_problem(tiny_problem(tmp_path / "tiny")), config())
    return Ledger(db, run_id, "local")


def count(db: Database, model: type, **where: object) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model).filter_by(**where))


def test_a_call_stores_every_completion_and_counts_it_in_step_with_the_run_row(
        ledger: Ledger) -> None:
    parent = scored_initial(ledger)
    calls = [[proposal(parent, code(2), 1, tokens=(100, 20), cost=0.25),
              proposal(parent, None, 2, tokens=(100, 5), cost=0.5)],
             [proposal(parent, code(3), 3, tokens=(7, 3), cost=0.125)]]
    for n, call in enumerate(calls):
        ledger.add_call(call, {}, f"call-{n}")
        run = in_step(ledger)
    assert (run.llm_calls, run.iterations) == (2, 3)
    assert (run.prompt_tokens, run.completion_tokens) == (207, 28)
    assert run.cost == pytest.approx(0.875)
    with ledger.db.session() as s:
        samples = s.scalars(select(LLMSampleRow).order_by(LLMSampleRow.id)).all()
    assert [(x.group_id, x.iteration, x.outcome) for x in samples] == [
        ("call-0", 1, "child"), ("call-0", 2, "rejected"), ("call-1", 3, "child")]
    assert samples[1].rejection == "no code block found" and samples[0].cost == 0.25


def test_duplicates_and_unchanged_children_get_no_evaluation_row(ledger: Ledger) -> None:
    parent = scored_initial(ledger)
    earlier = ledger.add_call([proposal(parent, code(5), 1)], {}, "first")[0]
    known = {parent.code_hash: parent.id, earlier.code_hash: earlier.program_id}
    children = ledger.add_call([
        proposal(parent, code(6), 2),                     # new
        proposal(parent, code(1), 3, unchanged=True),     # the parent again
        proposal(parent, code(5), 4),                     # a program stored earlier
        proposal(parent, code(6), 5),                     # the same as a child of this call
        proposal(parent, None, 6),                        # no program at all
    ], known, "second")
    assert [c.outcome for c in children] == [
        SampleOutcome.CHILD, SampleOutcome.UNCHANGED, SampleOutcome.DUPLICATE,
        SampleOutcome.DUPLICATE, SampleOutcome.REJECTED]
    assert [c.evaluation_id is not None for c in children] == [True, False, False, False, False]
    assert children[4].program_id is None
    with ledger.db.session() as s:
        progs = [s.get(ProgramRow, c.program_id) for c in children[:4]]
        evaluated = set(s.scalars(select(EvaluationRow.program_id)))
    assert [p.status for p in progs] == ["pending", "duplicate", "duplicate", "duplicate"]
    assert [p.duplicate_of for p in progs] == [None, parent.id, earlier.program_id, progs[0].id]
    assert evaluated == {parent.id, earlier.program_id, progs[0].id}
    assert in_step(ledger).iterations == 6  # every completion counts, evaluated or not


def test_a_call_that_fails_half_way_leaves_neither_rows_nor_counts(ledger: Ledger) -> None:
    parent = scored_initial(ledger)
    before = in_step(ledger)
    broken = proposal(parent, code(7), 2)
    broken.iteration = None  # type: ignore[assignment]  # NOT NULL: the second insert fails
    with pytest.raises(exc.IntegrityError):
        ledger.add_call([proposal(parent, code(6), 1), broken], {}, "doomed")
    after = in_step(ledger)
    assert (after.llm_calls, after.iterations, after.prompt_tokens) == \
        (before.llm_calls, before.iterations, before.prompt_tokens) == (0, 0, 0)
    assert count(ledger.db, LLMSampleRow) == 0
    assert count(ledger.db, ProgramRow) == count(ledger.db, EvaluationRow) == 1  # the initial


def test_results_update_program_evaluation_run_and_best_together(ledger: Ledger) -> None:
    parent = scored_initial(ledger)
    run = in_step(ledger)
    assert (run.evaluations, run.best_score, run.initial_score) == (1, -9.0, -9.0)
    good, bad = ledger.add_call([proposal(parent, code(8), 1), proposal(parent, code(9), 2)],
                                {}, "c")
    ok = EvalResult("ok", score=-2.0, metrics={"combined_score": -2.0}, duration_s=0.5)
    apply_result(good.program, ok, {"length": 3.0})
    ledger.record_result(good.program, good.evaluation_id, ok, [good.program_id], [parent.id],
                         best=True)
    run = in_step(ledger)
    assert (run.best_score, run.best_program_id, run.last_improvement_iteration) == \
        (-2.0, good.program_id, 1)
    assert run.initial_score == -9.0
    failed = EvalResult.failure("exception", "boom")
    apply_result(bad.program, failed, {})
    ledger.record_result(bad.program, bad.evaluation_id, failed, [], [], best=False)
    run = in_step(ledger)
    assert (run.evaluations, run.failed) == (3, 1)
    with ledger.db.session() as s:
        evs = {e.program_id: e for e in s.scalars(select(EvaluationRow))}
        progs = {p.id: p for p in s.scalars(select(ProgramRow))}
    assert (evs[good.program_id].status, evs[good.program_id].duration_s) == ("ok", 0.5)
    assert (evs[bad.program_id].status, evs[bad.program_id].error_kind) == ("failed", "exception")
    assert progs[good.program_id].in_archive and not progs[parent.id].in_archive  # evicted
    assert progs[good.program_id].features == {"length": 3.0} and \
        progs[bad.program_id].score is None


def test_a_result_a_worker_already_wrote_leaves_its_evaluation_row_alone(ledger: Ledger) -> None:
    prog, eid = ledger.add_initial(code(1), code_hash(code(1)))
    with ledger.db.session() as s:
        row = s.get(EvaluationRow, eid)
        row.status, row.worker = "ok", "celery@w1"
    result = EvalResult("ok", score=-9.0)
    apply_result(prog, result, {})
    ledger.record_result(prog, eid, result, [prog.id], [], best=True, evaluation_written=True)
    with ledger.db.session() as s:
        assert s.get(EvaluationRow, eid).worker == "celery@w1"
        assert s.get(ProgramRow, prog.id).status == "ok"
    assert in_step(ledger).evaluations == 1


def test_archive_changes_set_membership_and_a_new_best(ledger: Ledger) -> None:
    parent = scored_initial(ledger)
    migrant, = ledger.add_migrants([(parent, 1)], iteration=4)
    better, = ledger.add_migrants([(parent, 1)], iteration=5)
    better.score = -1.0
    ledger.archive_changed([migrant.id, better.id], [parent.id], better)
    run = in_step(ledger)
    assert (run.best_program_id, run.best_score, run.last_improvement_iteration) == \
        (better.id, -1.0, 5)
    with ledger.db.session() as s:
        members = set(s.scalars(select(ProgramRow.id).where(ProgramRow.in_archive)))
        copy = s.get(ProgramRow, migrant.id)
    assert members == {migrant.id, better.id}
    assert (copy.kind, copy.island, copy.status, copy.score) == ("migrant", 1, "ok", -9.0)
    assert run.evaluations == 1  # a migrant is never evaluated again
    ledger.archive_changed([], [better.id], None)
    assert in_step(ledger).best_program_id == better.id  # leaving the archive keeps the best


def test_side_calls_store_their_rows_and_count_their_tokens_and_cost_together(
        ledger: Ledger) -> None:
    side = Completion("- try larger values", "stop", 300, 12, 0.02, "scripted")
    row = ScratchpadRow(run_id=ledger.run_id, version=1, iteration=0, digest="d", text="t",
                        model="scripted", prompt_tokens=300, completion_tokens=12)
    ledger.add_side_call(side, 0.75, [row])
    with ledger.db.session() as s:
        assert s.scalar(select(ScratchpadRow.text).where(ScratchpadRow.id == row.id)) == "t"
    run = in_step(ledger)
    assert (run.prompt_tokens, run.completion_tokens, run.cost) == (300, 12, 0.75)
    assert (run.llm_calls, run.iterations) == (0, 0)  # not a proposal call


def test_a_side_call_whose_rows_fail_to_store_is_not_counted(ledger: Ledger) -> None:
    side = Completion("notes", "stop", 300, 12, 0.02, "scripted")
    broken = ScratchpadRow(run_id=ledger.run_id, version=None, iteration=0, digest="d", text="t",
                           model="scripted", prompt_tokens=300, completion_tokens=12)
    with pytest.raises(IntegrityError):
        ledger.add_side_call(side, 0.75, [broken])
    assert in_step(ledger).prompt_tokens == 0


def test_reopen_opens_a_new_attempt_and_marks_the_old_one_lost(ledger: Ledger) -> None:
    prog, first = ledger.add_initial(code(1), code_hash(code(1)))
    with ledger.db.session() as s:
        s.get(ProgramRow, prog.id).status = ProgramStatus.EVALUATING
    second = ledger.reopen(prog.id)
    third = ledger.reopen(prog.id)
    latest = ledger.latest_evaluations([prog.id])[prog.id]
    with ledger.db.session() as s:
        attempts = [(e.id, e.attempt, e.status) for e in s.scalars(
            select(EvaluationRow).order_by(EvaluationRow.id))]
        status = s.get(ProgramRow, prog.id).status
    assert attempts == [(first, 1, "lost"), (second, 2, "lost"), (third, 3, "queued")]
    assert latest.id == third and latest.status == EvaluationStatus.QUEUED
    assert status == "pending"
    assert in_step(ledger).evaluations == 0  # an attempt is not a result


def test_load_totals_picks_up_what_another_writer_wrote(ledger: Ledger) -> None:
    parent = scored_initial(ledger)
    other = Ledger(ledger.db, ledger.run_id, "local")  # e.g. an RL round's rollouts
    other.load_totals()
    child = other.add_call([proposal(parent, code(4), 1, cost=0.5)], {}, "rollout")[0]
    result = EvalResult.failure("timeout", "took too long")
    apply_result(child.program, result, {})
    other.record_result(child.program, child.evaluation_id, result, [], [], best=False)
    stale = Counters(**{name: getattr(ledger.counters, name) for name in TOTALS})
    run = ledger.load_totals()
    assert (stale.llm_calls, stale.evaluations) == (0, 1)
    assert {n: getattr(ledger.counters, n) for n in TOTALS} == \
        {n: getattr(other.counters, n) for n in TOTALS} == {n: getattr(run, n) for n in TOTALS}
    assert (run.llm_calls, run.iterations, run.evaluations, run.failed) == (1, 1, 2, 1)


def test_the_run_status_moves_only_where_the_table_allows(ledger: Ledger) -> None:
    assert ledger.run().status == RunStatus.CREATED
    with pytest.raises(RunStatusError, match="is created; it cannot become completed"):
        ledger.move_run(RunStatus.COMPLETED)
    ledger.move_run(RunStatus.RUNNING, stop_reason=None)
    ledger.move_run(RunStatus.RUNNING)  # staying is always allowed
    ledger.move_run(RunStatus.COMPLETED, stop_reason="budget of 3 iterations reached")
    with pytest.raises(RunStatusError, match="is completed; it cannot become paused"):
        ledger.move_run(RunStatus.PAUSED)
    run = ledger.run()
    assert (run.status, run.stop_reason) == ("completed", "budget of 3 iterations reached")


def test_the_repair_an_answer_took_is_stored_on_its_sample(ledger: Ledger) -> None:
    parent = scored_initial(ledger)
    repaired = proposal(parent, code(4), 1)
    repaired.repair = "strip_prose+drop_cut_line"
    ledger.add_call([repaired, proposal(parent, code(6), 2)], {}, "call")
    with ledger.db.session() as s:
        stored = s.scalars(select(LLMSampleRow.repair).order_by(LLMSampleRow.id)).all()
    assert stored == ["strip_prose+drop_cut_line", None]
