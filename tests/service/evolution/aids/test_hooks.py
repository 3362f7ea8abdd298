"""The search aids where the engine calls them: crossover partners from another island or cell."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from service.db.models import LLMSampleRow, ProgramRow
from service.evolution.archive import feature_cell
from service.llm.scripted import ScriptedBackend
from tests.service.driver import drive
from tests.service.engine_helpers import config, returns, tiny_problem


def test_engine_sends_crossover_prompts_with_parents_from_two_islands(
        sqlite_url: str, tmp_path: Path) -> None:
    llm = ScriptedBackend([returns(v) for v in (3, 5, 2, 7, 4, 6, 8, 1, 9, 0)], max_concurrency=1)
    cfg = config(budget__iterations=10, search={"num_islands": 2, "migration_interval": 2,
                                                "crossover_rate": 1.0},
                 evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10})
    db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    assert run.status == "completed"
    with db.session() as s:
        samples = list(s.scalars(select(LLMSampleRow).filter_by(run_id=run.id)))
        progs = {p.id: p for p in s.scalars(select(ProgramRow).filter_by(run_id=run.id))}
    crosses = [x for x in samples if x.kind == "crossover"]
    assert crosses, "no crossover prompt was sent although both islands had programs"
    assert any(progs[progs[next(p.id for p in progs.values() if p.sample_id == x.id)]
                     .inspiration_ids[0]].island != x.island for x in crosses)
    assert {x.kind for x in samples} <= {"mutation", "crossover"}
    for x in crosses:
        child = next(p for p in progs.values() if p.sample_id == x.id)
        parent, partner = progs[x.parent_id], progs[child.inspiration_ids[0]]
        assert parent.code_hash != partner.code_hash
        assert partner.island != x.island or (  # before island 1 has programs: another cell
            feature_cell(partner.features, cfg.search) != feature_cell(parent.features, cfg.search))
        user = x.prompt[-1]["content"]
        assert "Program A" in user and "Program B" in user
        for code in (parent.code, partner.code):
            body = code.split("# EVOLVE-BLOCK-START\n")[1].split("# EVOLVE-BLOCK-END")[0]
            assert body.strip().splitlines()[-1].strip() in user


def test_crossover_rate_zero_sends_only_mutation_prompts(sqlite_url: str, tmp_path: Path) -> None:
    llm = ScriptedBackend([returns(v) for v in (3, 5, 2, 7)], max_concurrency=1)
    cfg = config(budget__iterations=4, search={"num_islands": 2, "migration_interval": 1})
    db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    with db.session() as s:
        kinds = set(s.scalars(select(LLMSampleRow.kind).filter_by(run_id=run.id)))
    assert kinds == {"mutation"}


def test_with_one_island_the_second_parent_comes_from_another_map_elites_cell(
        sqlite_url: str, tmp_path: Path) -> None:
    llm = ScriptedBackend([returns(v) for v in (3, 12345.678, 5, 7, 99999.5, 8)],
                          max_concurrency=1)
    cfg = config(budget__iterations=6, search={"num_islands": 1, "crossover_rate": 1.0,
                                               "feature_dimensions": ["value"],
                                               "feature_ranges": {"value": [0, 20]},
                                               "feature_bins": 4},
                 evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10})
    db, run, engine = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    with db.session() as s:
        samples = list(s.scalars(select(LLMSampleRow).filter_by(run_id=run.id, kind="crossover")))
        progs = {p.id: p for p in s.scalars(select(ProgramRow).filter_by(run_id=run.id))}
    assert samples
    isl = engine.archive.islands[0]
    for x in samples:
        child = next(p for p in progs.values() if p.sample_id == x.id)
        partner = progs[child.inspiration_ids[0]]
        parent = progs[x.parent_id]
        assert partner.island == parent.island == 0
        assert partner.features["value"] != parent.features["value"]
    assert len(isl.grid) >= 2
