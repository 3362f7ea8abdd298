"""The evolution loop with a scripted LLM, the real local sandbox and real databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.db import Database
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow
from service.edits.closable import PYTHON_BLOCK
from service.evolution.report import InitialProgramFailed
from service.llm.base import LLMUnavailable
from service.llm.scripted import ScriptedBackend
from service.runs import write_best
from tests.service.driver import drive
from tests.service.engine_helpers import (
    answer,
    config,
    invalid_above_ten,
    returns,
    tiny_problem,
)


def count(db: Database, model: type, **where: object) -> int:
    with db.session() as s:
        stmt = select(func.count()).select_from(model).filter_by(**where)
        return s.scalar(stmt)


def test_run_improves_and_stores_every_child(db_url: str, tmp_path: Path) -> None:
    llm = ScriptedBackend([returns(v) for v in (3, 7, 9, 10, 12, 5)])
    db, run, _ = drive(db_url, tiny_problem(tmp_path / "p"), config(budget__iterations=6), llm)
    assert run.status == "completed" and "6 iterations" in run.stop_reason
    assert (run.iterations, run.llm_calls, run.evaluations, run.failed) == (6, 6, 7, 0)
    assert run.initial_score == -9.0 and run.best_score == 0.0
    assert count(db, LLMSampleRow, run_id=run.id) == 6
    assert count(db, ProgramRow, run_id=run.id, kind="mutation") == 6
    assert count(db, EvaluationRow, run_id=run.id, status="ok") == 7
    with db.session() as s:
        best = s.get(ProgramRow, run.best_program_id)
        assert "return 10" in best.code and best.parent_id is not None
        assert best.model == "scripted" and best.metrics["value"] == 10.0
        assert all(p.generation >= 1 for p in s.scalars(select(ProgramRow).filter_by(
            run_id=run.id, kind="mutation")))
    assert run.prompt_tokens > 0 and run.completion_tokens > 0


def test_rejected_duplicate_and_failing_children_are_recorded_not_lost(
        sqlite_url: str, tmp_path: Path) -> None:
    answers = ["I cannot help with that.", returns(1), returns(4), returns(4),
               answer("def value():\n    raise RuntimeError('boom')"), returns("float('nan')")]
    llm = ScriptedBackend(answers, max_concurrency=1)
    cfg = config(budget__iterations=6, evaluation__workers=1)
    db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    with db.session() as s:
        samples = {x.iteration: x for x in s.scalars(select(LLMSampleRow).filter_by(run_id=run.id))}
        progs = {p.iteration: p for p in s.scalars(select(ProgramRow).filter_by(
            run_id=run.id, kind="mutation"))}
    assert samples[1].outcome == "rejected" and "no code" in samples[1].rejection
    assert samples[2].outcome == "unchanged" and progs[2].status == "duplicate"
    assert progs[3].status == "ok" and progs[4].status == "duplicate"
    assert progs[4].duplicate_of == progs[3].id
    assert progs[5].status == "failed" and progs[5].failure_kind == "exception"
    assert "boom" in progs[5].failure_reason
    assert progs[6].status == "failed" and progs[6].failure_kind == "invalid_metrics"
    assert run.evaluations == 4 and run.failed == 2  # initial, 4, boom, nan


def test_target_score_stops_the_run(sqlite_url: str, tmp_path: Path) -> None:
    llm = ScriptedBackend([returns(v) for v in range(2, 40)], max_concurrency=1)
    cfg = config(budget__iterations=30, budget__target_score=-2.5, evaluation__workers=1,
                 evaluation__in_flight=1)
    _, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    assert run.best_score == -2.0 and "target" in run.stop_reason
    assert run.iterations == 7  # the 7th child returns 8: score -2


@pytest.mark.parametrize("budget,limit", [("llm_calls", 3), ("tokens", 150)])
def test_llm_budgets_stop_the_run(sqlite_url: str, tmp_path: Path, budget: str, limit: int) -> None:
    llm = ScriptedBackend([returns(v) for v in range(2, 40)], max_concurrency=1)
    cfg = config(budget__iterations=None, evaluation__in_flight=1, **{f"budget__{budget}": limit})
    _, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    used = run.llm_calls if budget == "llm_calls" else run.prompt_tokens + run.completion_tokens
    assert used >= limit and budget.replace("_", " ").replace("llm", "LLM") in run.stop_reason
    assert run.llm_calls <= (3 if budget == "llm_calls" else 40)


def test_stagnation_stops_the_run(sqlite_url: str, tmp_path: Path) -> None:
    llm = ScriptedBackend([returns(v) for v in (5, 0, -1, -2, -3, -4, -5, -6)], max_concurrency=1)
    cfg = config(budget__iterations=20, budget__stagnation_iterations=3, evaluation__in_flight=1)
    _, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    assert "no improvement in 3" in run.stop_reason and run.iterations == 4


def test_batches_of_prompts_and_completions_count_one_call_each(
        sqlite_url: str, tmp_path: Path) -> None:
    llm = ScriptedBackend([returns(v) for v in range(2, 40)])
    cfg = config(budget__iterations=8, llm__n=2, llm__prompts_per_call=2, evaluation__in_flight=8)
    db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    assert run.iterations == 8 and run.llm_calls == 2
    with db.session() as s:
        groups = s.scalars(select(LLMSampleRow.group_id).filter_by(run_id=run.id)).all()
    assert len(set(groups)) == 2


def test_migration_copies_the_best_to_the_next_island(sqlite_url: str, tmp_path: Path) -> None:
    llm = ScriptedBackend([returns(v) for v in (3, 8, 2, 9, 4, 6, 7, 5)])
    cfg = config(budget__iterations=8, search__num_islands=2, search__migration_interval=4)
    db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    with db.session() as s:
        migrants = list(s.scalars(select(ProgramRow).filter_by(run_id=run.id, kind="migrant")))
        assert migrants
        for m in migrants:
            source = s.get(ProgramRow, m.parent_id)
            assert m.island != source.island and m.code_hash == source.code_hash
            assert m.score == source.score


def test_llm_down_pauses_the_run_and_keeps_it(sqlite_url: str, tmp_path: Path) -> None:
    class Down(ScriptedBackend):
        async def generate(self, prompts, n, sampling):
            raise LLMUnavailable("LLM server at http://127.0.0.1:9/v1 is unreachable")

    _, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), config(budget__iterations=4),
                      Down([returns(1)]))
    assert run.status == "paused" and "unreachable" in run.stop_reason
    assert run.initial_score == -9.0 and run.iterations == 0


def test_initial_program_failure_is_explained(sqlite_url: str, tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "p")
    (folder / "initial_program.py").write_text(
        "# EVOLVE-BLOCK-START\ndef value():\n    return 1 / 0\n# EVOLVE-BLOCK-END\n")
    with pytest.raises(InitialProgramFailed, match=r"ZeroDivisionError.*problems check"):
        drive(sqlite_url, folder, config(budget__iterations=2), ScriptedBackend([returns(1)]))


@pytest.mark.parametrize("invalid_parents", [False, True])
def test_programs_marked_invalid_are_kept_but_never_parents_unless_asked(
        db_url: str, tmp_path: Path, invalid_parents: bool) -> None:
    folder = invalid_above_ten(tiny_problem(tmp_path / "p"))
    llm = ScriptedBackend([returns(10.5)] + [returns(v) for v in range(2, 9)], max_concurrency=1)
    cfg = config(budget__iterations=8, evaluation__workers=1, search__num_islands=1,
                 search__invalid_parents=invalid_parents)
    db, run, _ = drive(db_url, folder, cfg, llm)
    with db.session() as s:
        invalid = s.scalars(select(ProgramRow).filter_by(run_id=run.id, iteration=1)).one()
        children = s.scalars(select(ProgramRow).filter(ProgramRow.run_id == run.id,
                                                       ProgramRow.iteration > 1)).all()
    assert invalid.status == "ok" and invalid.score == -0.5 and invalid.metrics["validity"] == 0
    assert invalid.in_archive is invalid_parents
    assert run.best_score == (-0.5 if invalid_parents else -2.0)
    best, _ = write_best(db, run.id, tmp_path / "best.py")
    assert (best.id == invalid.id) is invalid_parents  # the file is the run's best, not the top row
    if not invalid_parents:  # 7 children, none of the invalid program, before or after a resume
        assert len(children) == 7 and invalid.id not in {c.parent_id for c in children}
        cfg.budget.iterations = 12
        llm = ScriptedBackend([returns(v) for v in (3, 4, 5, 6)], max_concurrency=1)
        _, run2, _ = drive(db, folder, cfg, llm, run_id=run.id)
        with db.session() as s:
            later = s.scalars(select(ProgramRow.parent_id).filter(
                ProgramRow.run_id == run.id, ProgramRow.iteration > 8)).all()
        assert len(later) == 4 and invalid.id not in later and run2.best_score == -2.0


def test_resume_continues_to_the_new_budget_without_repeating(
        sqlite_url: str, tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "p")
    llm = ScriptedBackend([returns(v) for v in range(2, 40)], max_concurrency=1)
    cfg = config(budget__iterations=3)
    db, run, _ = drive(sqlite_url, folder, cfg, llm)
    cfg.budget.iterations = 6
    _, run2, _ = drive(db, folder, cfg, llm, run_id=run.id)
    assert run2.iterations == 6 and run2.evaluations == 7
    assert count(db, ProgramRow, run_id=run.id, kind="initial") == 1
    with db.session() as s:
        hashes = s.scalars(select(ProgramRow.code_hash).filter_by(run_id=run.id, status="ok",
                                                                   kind="mutation")).all()
    assert len(hashes) == len(set(hashes))


@pytest.mark.parametrize(("fmt", "close_code", "asked"), [
    ("rewrite", True, True), ("rewrite", False, False), ("diff", True, False)])
def test_rewrite_answers_are_decoded_with_the_code_guard_unless_turned_off(
        sqlite_url: str, tmp_path: Path, fmt: str, close_code: bool, asked: bool) -> None:
    seen = []

    class Recording(ScriptedBackend):
        async def generate(self, prompts, n, sampling):
            seen.append(sampling.guard is PYTHON_BLOCK)
            return await super().generate(prompts, n, sampling)

    cfg = config(budget__iterations=2, llm__answer_format=fmt, llm__close_code=close_code)
    drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, Recording([returns(2), returns(3)]))
    assert seen and set(seen) == {asked}
