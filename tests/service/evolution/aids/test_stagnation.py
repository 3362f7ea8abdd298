"""Stagnation handling: island resets from the better islands, and the temperature schedule."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from service.config import SearchConfig, build_run_config
from service.db.models import LLMSampleRow, ProgramRow
from service.evolution.aids.stagnation import reset_due, reset_plan, temperature_at
from service.evolution.archive import Archive, Member
from service.llm.scripted import ScriptedBackend
from tests.service.driver import drive
from tests.service.engine_helpers import config, returns, tiny_problem


def test_temperature_schedules() -> None:
    def llm(**kw: object):
        return build_run_config({"llm": {"temperature": 1.0, "temperature_end": 0.2, **kw}}).llm
    assert temperature_at(llm(), 50, 100) == 1.0
    lin = llm(temperature_schedule="linear")
    assert temperature_at(lin, 0, 11) == 1.0
    assert temperature_at(lin, 5, 11) == pytest.approx(0.6)
    assert temperature_at(lin, 10, 11) == pytest.approx(0.2)
    assert temperature_at(lin, 50, 11) == pytest.approx(0.2)
    cos = llm(temperature_schedule="cosine", temperature_period=4)
    assert [round(temperature_at(cos, i, None), 3) for i in range(5)] == [1.0, 0.6, 0.2, 0.6, 1.0]


def test_reset_is_due_after_patience_without_improvement_or_reset() -> None:
    assert not reset_due(10, 5, 0, None)
    assert not reset_due(9, 5, 0, 5)
    assert reset_due(10, 5, 0, 5)
    assert not reset_due(10, 5, 8, 5)


def _archive(bests: list[float]) -> Archive:
    cfg = SearchConfig(num_islands=len(bests), feature_dimensions=[])
    archive = Archive(cfg, random.Random(0))
    pid = 0
    for island, best in enumerate(bests):
        for f in (best - 1.0, best):
            pid += 1
            archive.add(Member(id=pid, island=island, fitness=f, score=f, code_hash=str(pid)))
    return archive


def test_worse_half_of_the_islands_restarts_from_the_best_of_the_better_half() -> None:
    archive = _archive([1.0, 5.0, 3.0, 0.0])
    plan = reset_plan(archive, random.Random(3))
    assert sorted(i for i, _ in plan) == [0, 3]
    assert {m.id for _, m in plan} <= {archive.islands[1].best().id, archive.islands[2].best().id}
    assert plan == reset_plan(archive, random.Random(3))  # deterministic under a seed
    removed = archive.reset_island(0)
    assert removed == [1, 2] and not archive.islands[0].members and archive.size == 6


def test_a_single_island_is_never_reset() -> None:
    assert reset_plan(_archive([1.0]), random.Random(0)) == []


def test_engine_resets_stagnant_islands_and_resume_rebuilds_the_same_archive(
        db_url: str, tmp_path: Path) -> None:
    # 3 is an improvement on 1; every later answer is worse, so the run stagnates
    llm = ScriptedBackend([returns(v) for v in (3, -5, -6, -7, -8, -9, -11, -12, -13, -14)],
                          max_concurrency=1)
    cfg = config(budget__iterations=10, seed=1,
                 search={"num_islands": 2, "migration_interval": 100,
                         "island_reset_iterations": 3},
                 llm={"backend": "scripted", "temperature": 1.0, "temperature_end": 0.1,
                      "temperature_schedule": "linear"},
                 evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10})
    folder = tiny_problem(tmp_path / "p")
    db, run, engine = drive(db_url, folder, cfg, llm)
    assert run.status == "completed"
    with db.session() as s:
        reseeds = list(s.scalars(select(ProgramRow).filter_by(run_id=run.id, kind="reseed")
                                 .order_by(ProgramRow.id)))
        temps = list(s.scalars(select(LLMSampleRow.temperature).filter_by(run_id=run.id)
                               .order_by(LLMSampleRow.iteration)))
        best = s.get(ProgramRow, run.best_program_id)
    assert reseeds, "no island was reset although nothing improved for 3 iterations"
    first = reseeds[0]
    assert first.iteration >= 3 and first.code_hash == best.code_hash
    assert first.island != best.island or best.kind == "reseed"
    assert engine.aids.resets == len(reseeds)
    assert temps[0] == pytest.approx(1.0) and temps[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(temps))
    # the archive a resumed controller rebuilds from the rows is the one the run ended with
    live = [sorted(isl.members) for isl in engine.archive.islands]
    cfg.budget.iterations = run.iterations  # nothing more to do: restore only
    _, _, again = drive(db_url, folder, cfg, ScriptedBackend([returns(0)]), run_id=run.id)
    assert [sorted(isl.members) for isl in again.archive.islands] == live
    assert again.aids.last_reset == reseeds[-1].iteration
