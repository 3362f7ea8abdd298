"""The controller side of rl.trainer = "external": it stops proposing while a round is open,
skips a round no trainer claims, expires a claim whose trainer died and scores what it left."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select

from service.db import Database
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow
from service.edits.identity import code_hash
from service.evolution.archive import Member
from service.evolution.engine import Engine
from service.evolution.ledger import Ledger, Proposal
from service.llm.base import Completion, Message
from service.llm.scripted import ScriptedBackend
from service.rl.rounds import claim, create_round, due_rounds, finish, get_round, open_round
from tests.service.driver import build, in_thread, run_to_stop, wait_until
from tests.service.engine_helpers import PROGRAM, config, returns, tiny_problem

EXTERNAL = {"enabled": True, "trainer": "external", "every_n_children": 3, "steps": 1,
            "group_size": 2}
ONE_AT_A_TIME = {"workers": 1, "in_flight": 1, "timeout_s": 10}
ANSWERS = [returns(3), returns(5), returns(7), returns(8), returns(9)]


def _engine(target: str | Database, folder: Path, budget: int, run_id: int | None = None,
            **rl: object) -> tuple[Database, Engine]:
    """Returns the database and the engine of a new run (or run_id's) with an external trainer."""
    cfg = config(budget__iterations=budget, evaluation=ONE_AT_A_TIME, rl={**EXTERNAL, **rl})
    db, engine = build(target, folder, cfg, ScriptedBackend(ANSWERS, max_concurrency=1),
                       run_id=run_id)
    engine.training.poll_s = 0.1
    return db, engine


def _iterations(db: Database, run_id: int) -> list[int]:
    with db.session() as s:
        return list(s.scalars(select(LLMSampleRow.iteration).where(LLMSampleRow.run_id == run_id)
                              .order_by(LLMSampleRow.id)))


def test_a_round_no_trainer_claims_is_skipped_and_the_run_completes(db_url: str,
                                                                    tmp_path: Path) -> None:
    db, engine = _engine(db_url, tiny_problem(tmp_path / "tiny"), 5, claim_timeout_s=0.5)
    run, run_id = run_to_stop(engine), engine.run_id
    assert run.status == "completed" and run.iterations == 5
    skipped = get_round(db, 1)
    assert skipped.run_id == run_id and skipped.status == "skipped"
    assert "no trainer claimed it" in skipped.error and "evoforge trainer" in skipped.error
    assert open_round(db, run_id) is None and due_rounds(db) == []
    assert sorted(_iterations(db, run_id)) == list(range(1, 6))


def _dead_trainer_writes_one_child(db: Database, run_id: int) -> int:
    """Claims the due round with a 1 s lease, stores one child (pending), and never comes back."""
    rnd = wait_until(lambda: next(iter(due_rounds(db, [run_id])), None))
    assert claim(db, rnd.id, "gpu-host:4242", lease_s=1.0)
    ledger = Ledger(db, run_id, "local")
    with db.session() as s:
        parent = s.scalars(select(ProgramRow).where(ProgramRow.run_id == run_id,
                                                    ProgramRow.kind == "initial")).one()
        first = s.get(RunRow, run_id).iterations + 1
    code = PROGRAM.replace("return 1", "return 6")
    member = Member(id=parent.id, island=0, fitness=0.0, score=parent.score,
                    code_hash=parent.code_hash)
    child = ledger.add_call([Proposal(
        iteration=first, parent=member, parent_generation=0, inspirations=[], island=0,
        prompt=[Message("user", "improve")], code=code, code_hash=code_hash(code),
        completion=Completion("...", "stop", 0, 0, 0.0, "policy", "run-v1-training"),
        rejection=None, unchanged=False)], {}, "grpo-dead")[0]
    return child.program_id


def test_the_controller_waits_for_a_claimed_round_and_scores_what_a_dead_trainer_left(
        pg_url: str, tmp_path: Path) -> None:
    db, engine = _engine(pg_url, tiny_problem(tmp_path / "tiny"), 6)
    run_id = engine.run_id
    thread, out = in_thread(engine)
    orphan = _dead_trainer_writes_one_child(db, run_id)
    time.sleep(0.5)  # within the lease: the controller must neither propose nor evaluate
    with db.session() as s:
        assert s.get(ProgramRow, orphan).status == "pending"
        assert s.scalar(select(func.max(LLMSampleRow.iteration))
                        .where(LLMSampleRow.run_id == run_id)) == 3
    thread.join(120)
    assert out and out[0].status == "completed" and out[0].iterations == 6
    assert get_round(db, 1).status == "expired" and "gpu-host:4242" in get_round(db, 1).error
    with db.session() as s:
        prog = s.get(ProgramRow, orphan)
        attempts = s.scalars(select(EvaluationRow.status).where(
            EvaluationRow.program_id == orphan).order_by(EvaluationRow.id)).all()
    assert prog.status == "ok" and prog.score == -4.0
    assert attempts == ["lost", "ok"]  # the dead trainer's attempt, then exactly one result
    assert sorted(_iterations(db, run_id)) == list(range(1, 7))  # no iteration twice


def test_a_controller_starting_on_a_run_with_an_open_round_waits_before_touching_it(
        pg_url: str, tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    db, first = _engine(pg_url, folder, 2, every_n_children=50)
    run_to_stop(first)
    run_id = first.run_id
    rnd = create_round(db, run_id, evaluations=3, steps=1)
    assert claim(db, rnd.id, "gpu-host:7", lease_s=60)
    thread, out = in_thread(_engine(db, folder, 4, run_id, every_n_children=50)[1])
    time.sleep(1.5)
    assert _iterations(db, run_id) == [1, 2] and not out  # waiting on the trainer
    assert finish(db, rnd.id, "gpu-host:7", error="CUDA out of memory")
    thread.join(120)
    assert out and out[0].status == "completed" and _iterations(db, run_id) == [1, 2, 3, 4]
