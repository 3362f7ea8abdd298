"""service.evolution.folded on PostgreSQL: a call of one proposal and a result written as one
statement store exactly the rows the transaction of several statements stores, in one round trip
that is its own transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from evaluators.jobs import EvalResult
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow
from service.evolution.budget import TOTALS
from service.evolution.ledger import Ledger, apply_result
from service.problems.load import load_problem
from service.runs import create_run
from tests.service.driver import open_db
from tests.service.engine_helpers import config, tiny_problem
from tests.service.evolution.ledger_helpers import code, in_step, proposal, scored_initial

SKIP = {"id", "run_id", "created_at", "evaluated_at", "finished_at", "started_at", "updated_at",
        "heartbeat_at", "claimed_at"}
IDS = {"parent_id", "sample_id", "program_id", "duplicate_of", "best_program_id"}


def story(ledger: Ledger) -> None:
    """One of every write the folded statements cover: a scored initial program (its score the
    initial and best), a child that becomes the best and evicts its parent from the archive, a
    rejected answer, a duplicate, the parent again, a failed child, and a result a worker wrote."""
    parent = scored_initial(ledger)
    (child,) = ledger.add_call([proposal(parent, code(2), 1, tokens=(90, 9), cost=0.5)], {}, "a")
    ok = EvalResult("ok", score=-1.0, metrics={"combined_score": -1.0}, duration_s=0.25)
    apply_result(child.program, ok, {"length": 2.0})
    ledger.record_result(child.program, child.evaluation_id, ok, [child.program_id], [parent.id],
                         best=True)
    ledger.add_call([proposal(parent, None, 2)], {}, "b")
    ledger.add_call([proposal(parent, code(2), 3)], {child.code_hash: child.program_id}, "c")
    ledger.add_call([proposal(parent, code(1), 4, unchanged=True)], {}, "d")
    for iteration, evaluation_written in ((5, False), (6, True)):
        (bad,) = ledger.add_call([proposal(parent, code(iteration + 10), iteration)], {}, "e")
        failed = EvalResult.failure("exception", f"boom {iteration}")
        apply_result(bad.program, failed, {})
        ledger.record_result(bad.program, bad.evaluation_id, failed, [], [], best=False,
                             evaluation_written=evaluation_written)


def dump(ledger: Ledger) -> dict[str, Any]:
    """Returns the run's rows without their own ids and times, references as positions."""
    out: dict[str, Any] = {}
    with ledger.db.session() as s:
        rows = {model.__tablename__: s.scalars(select(model).filter_by(run_id=ledger.run_id)
                                               .order_by(model.id)).all()
                for model in (LLMSampleRow, ProgramRow, EvaluationRow)}
        position = {(table, r.id): i for table, rs in rows.items() for i, r in enumerate(rs)}
        for table, rs in rows.items():
            out[table] = [{k: (position.get((_target(k), v), v) if k in IDS else v)
                           for k, v in vars(r).items() if not k.startswith("_") and k not in SKIP}
                          for r in rs]
        run = s.get(RunRow, ledger.run_id)
        out["run"] = {name: getattr(run, name) for name in (*TOTALS, "best_score",
                                                              "initial_score")}
    return out


def _target(column: str) -> str:
    return "llm_samples" if column == "sample_id" else \
        "evaluations" if column == "evaluation_id" else "programs"


def test_folded_writes_store_what_the_transactions_store(pg_url: str, tmp_path: Path) -> None:
    db = open_db(pg_url)
    problem = load_problem(tiny_problem(tmp_path / "tiny"))
    ledgers = [Ledger(db, create_run(db, problem, config()), "local") for _ in range(2)]
    assert all(ledger.folds for ledger in ledgers)
    ledgers[1].folds = False
    for ledger in ledgers:
        story(ledger)
        in_step(ledger)
    folded, plain = (dump(ledger) for ledger in ledgers)
    assert folded == plain
    assert [p["in_archive"] for p in folded["programs"]][:2] == [False, True]
    assert folded["run"]["evaluations"] == 4 and folded["run"]["failed"] == 2


def test_a_folded_call_and_result_are_one_round_trip_each(pg_url: str, tmp_path: Path) -> None:
    db = open_db(pg_url)
    ledger = Ledger(db, create_run(db, load_problem(tiny_problem(tmp_path / "tiny")), config()),
                    "local")
    parent = scored_initial(ledger)
    sent: list[str] = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: sent.append(statement.split()[0]))
    event.listen(db.engine, "commit", lambda _c: sent.append("COMMIT"))
    (child,) = ledger.add_call([proposal(parent, code(3), 1)], {}, "a")
    ok = EvalResult("ok", score=-2.0, duration_s=0.1)
    apply_result(child.program, ok, {})
    ledger.record_result(child.program, child.evaluation_id, ok, [child.program_id], [],
                         best=True)
    assert sent == ["WITH", "WITH"]  # no BEGIN, no COMMIT: each statement commits on its own
    assert in_step(ledger).best_program_id == child.program_id


@pytest.mark.parametrize("broken", ["sample", "result"])
def test_a_folded_write_that_fails_leaves_nothing_of_it(pg_url: str, tmp_path: Path,
                                                          broken: str) -> None:
    db = open_db(pg_url)
    ledger = Ledger(db, create_run(db, load_problem(tiny_problem(tmp_path / "tiny")), config()),
                    "local")
    parent = scored_initial(ledger)
    before = dump(ledger)
    bad = proposal(parent, code(4), 1)
    if broken == "sample":
        bad.iteration = None  # type: ignore[assignment]  # NOT NULL on the sample row
        with pytest.raises(Exception, match="iteration"):
            ledger.add_call([bad], {}, "doomed")
    else:
        (child,) = ledger.add_call([bad], {}, "a")
        before = dump(ledger)
        ok = EvalResult("ok", score=-3.0, duration_s=0.1)
        apply_result(child.program, ok, {})
        child.program.status = "x" * 40  # longer than the column: the program's update fails
        with pytest.raises(Exception, match="too long"):
            ledger.record_result(child.program, child.evaluation_id, ok, [child.program_id],
                                 [parent.id], best=True)
    assert dump(ledger) == before
