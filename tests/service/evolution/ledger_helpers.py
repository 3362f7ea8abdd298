"""Helpers of the ledger's tests: the tiny program with a value, a scored initial program, a
proposal, and the check that the ledger's counters equal the run row."""

from __future__ import annotations

import pytest

from evaluators.jobs import EvalResult
from service.db.models import ProgramRow, RunRow
from service.edits.identity import code_hash
from service.evolution.archive import Member
from service.evolution.budget import TOTALS
from service.evolution.ledger import Ledger, Proposal, apply_result
from service.llm.base import Completion, Message
from tests.service.engine_helpers import PROGRAM

BEST = ("best_score", "best_program_id", "initial_score")


def code(value: object) -> str:
    """Returns the tiny program with value() returning value."""
    return PROGRAM.replace("return 1", f"return {value}")


def in_step(ledger: Ledger) -> RunRow:
    """Asserts that the ledger's counters equal the run row's totals; returns the row."""
    run = ledger.run()
    row = {name: getattr(run, name) for name in TOTALS + BEST}
    mem = {name: getattr(ledger.counters, name) for name in TOTALS + BEST}
    assert mem["cost"] == pytest.approx(row.pop("cost"))
    mem.pop("cost")
    assert mem == row
    return run


def scored_initial(ledger: Ledger, score: float = -9.0) -> ProgramRow:
    """Stores the initial program and records its (ok) result as the first best."""
    prog, eid = ledger.add_initial(code(1), code_hash(code(1)))
    apply_result(prog, EvalResult("ok", score=score, metrics={"combined_score": score}), {})
    ledger.record_result(prog, eid, EvalResult("ok", score=score), [prog.id], [], best=True)
    return prog


def proposal(parent: ProgramRow, text: str | None, iteration: int, *, unchanged: bool = False,
             tokens: tuple[int, int] = (40, 10), cost: float = 0.0) -> Proposal:
    """Returns a proposal of a child of parent with code text (None: a rejected answer)."""
    completion = Completion(f"answer {iteration}", "stop", tokens[0], tokens[1], 0.01, "scripted",
                            extra={"cost": cost})
    member = Member(id=parent.id, island=parent.island, fitness=parent.score or 0.0,
                    score=parent.score or 0.0, code_hash=parent.code_hash)
    return Proposal(
        iteration=iteration, parent=member, parent_generation=parent.generation, inspirations=[],
        island=parent.island, prompt=[Message("user", "improve value()")], completion=completion,
        code=text, code_hash=None if text is None else code_hash(text),
        rejection="no code block found" if text is None else None, unchanged=unchanged)


