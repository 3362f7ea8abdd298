"""service.evolution.aids.hooks (SearchAids), where the engine calls them: crossover partners from
another island or cell, the temperature schedule, scratchpad versions counted through the ledger,
island resets after stagnation, and the state a resumed engine restores from the rows."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from evaluators.jobs import EvalResult
from service.config import RunConfig
from service.db.models import LLMSampleRow, ProgramRow, ScratchpadRow
from service.evolution.aids.hooks import SearchAids
from service.evolution.archive import Archive, Member, feature_cell
from service.evolution.ledger import Ledger
from service.llm.base import Completion, LLMBackend, LLMError, Sampling
from service.llm.factory import make_backend
from service.llm.scripted import ScriptedBackend
from service.problems.load import load_problem
from service.runs import create_run
from service.settings import Settings
from tests.service.driver import drive, open_db
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


# --- SearchAids on their own: a stored run, a real database, the aids called as the engine does --

INSIGHT = "- Values near 10 score best."


class Aids:
    """A run of the tiny problem and a factory of its SearchAids."""

    def __init__(self, url: str, folder: Path, cfg: RunConfig) -> None:
        self.db = open_db(url)
        self.problem = load_problem(tiny_problem(folder))
        self.cfg = cfg
        self.run_id = create_run(self.db, self.problem, cfg)

    def aids(self, llm: LLMBackend | None = None) -> SearchAids:
        """Returns the aids of a (re)started engine: a new ledger, state restored from the rows."""
        ledger = Ledger(self.db, self.run_id, "local")
        ledger.load_totals()
        aids = SearchAids(ledger, self.problem, self.cfg, llm or ScriptedBackend([INSIGHT]))
        aids.restore(lambda score: None if score is None else
                     self.problem.direction.fitness(score))
        return aids

    def pads(self) -> list[ScratchpadRow]:
        with self.db.session() as s:
            return list(s.scalars(select(ScratchpadRow).where(ScratchpadRow.run_id == self.run_id)
                                  .order_by(ScratchpadRow.version)))


def scratch_cfg(every: int = 3) -> RunConfig:
    return config(budget__iterations=20, llm__price_per_1k_tokens=2.0,
                  search={"scratchpad": {"enabled": True, "every": every, "max_tokens": 40}})


@pytest.mark.parametrize(("schedule", "expected"), [
    ("constant", [1.0, 1.0, 1.0]),
    ("linear", [1.0, 0.55, 0.1]),    # from temperature to temperature_end over 11 iterations
    ("cosine", [1.0, 0.1, 1.0]),     # a period of 10: back where it started
])
def test_temperature_follows_the_schedule_over_the_iteration_budget(
        sqlite_url: str, tmp_path: Path, schedule: str, expected: list[float]) -> None:
    cfg = config(budget__iterations=11, llm={"backend": "scripted", "temperature": 1.0,
                                             "temperature_end": 0.1, "temperature_period": 10,
                                             "temperature_schedule": schedule})
    aids = Aids(sqlite_url, tmp_path / "tiny", cfg).aids()
    assert [aids.temperature(i) for i in (0, 5, 10)] == pytest.approx(expected)


def test_annotate_records_temperature_and_cost_unless_the_backend_did(
        sqlite_url: str, tmp_path: Path) -> None:
    aids = Aids(sqlite_url, tmp_path / "tiny", config(llm__price_per_1k_tokens=2.0)).aids()
    plain = Completion("x", "stop", 400, 100, 0.1, "scripted")
    own = Completion("y", "stop", 400, 100, 0.1, "cheap", extra={"temperature": 0.2, "cost": 0.01})
    aids.annotate([plain, own], Sampling(temperature=0.7))
    assert plain.extra == {"temperature": 0.7, "cost": pytest.approx(1.0)}  # 500 tokens at 2/1k
    assert own.extra == {"temperature": 0.2, "cost": 0.01}  # an ensemble member's own values


def test_the_scratchpad_is_written_every_n_iterations_and_counted_in_the_run_tokens(
        db_url: str, tmp_path: Path) -> None:
    run = Aids(db_url, tmp_path / "tiny", scratch_cfg(every=3))
    llm = ScriptedBackend([INSIGHT])
    aids = run.aids(llm)
    for iteration in range(1, 8):
        asyncio.run(aids.scratchpad(iteration))
    pads = run.pads()
    assert [(p.version, p.iteration) for p in pads] == [(1, 3), (2, 6)]
    assert aids.scratch == INSIGHT and all(p.text == INSIGHT for p in pads)
    assert "Your earlier notes" in llm.prompts[-1][-1].content  # version 2 saw version 1
    row = aids.ledger.run()
    tokens = sum(p.prompt_tokens + p.completion_tokens for p in pads)
    assert row.prompt_tokens + row.completion_tokens == tokens == aids.ledger.counters.tokens
    assert row.cost == pytest.approx(tokens * 2.0 / 1000) == aids.ledger.counters.cost
    assert (row.llm_calls, row.iterations) == (0, 0)  # side calls, not proposals


def test_concurrent_callers_write_one_scratchpad_version(db_url: str, tmp_path: Path) -> None:
    run = Aids(db_url, tmp_path / "tiny", scratch_cfg(every=3))
    aids = run.aids()

    async def both() -> None:
        await asyncio.gather(aids.scratchpad(3), aids.scratchpad(4))

    asyncio.run(both())
    assert [p.iteration for p in run.pads()] == [3]


def test_a_scratchpad_the_llm_fails_to_write_waits_for_the_next_period(
        sqlite_url: str, tmp_path: Path) -> None:
    class Failing(ScriptedBackend):
        async def generate(self, prompts, n, sampling):
            raise LLMError("the server answered 500")

    run = Aids(sqlite_url, tmp_path / "tiny", scratch_cfg(every=3))
    aids = run.aids(Failing([INSIGHT]))
    asyncio.run(aids.scratchpad(3))
    aids.llm = ScriptedBackend([INSIGHT])
    for iteration in (4, 5):
        asyncio.run(aids.scratchpad(iteration))
    assert run.pads() == [] and aids.scratch is None
    asyncio.run(aids.scratchpad(6))
    assert [p.iteration for p in run.pads()] == [6]


def test_restore_takes_the_latest_scratchpad_and_when_the_next_is_due(
        sqlite_url: str, tmp_path: Path) -> None:
    run = Aids(sqlite_url, tmp_path / "tiny", scratch_cfg(every=3))
    first = run.aids(ScriptedBackend(["- v1"]))
    asyncio.run(first.scratchpad(3))
    first.llm = ScriptedBackend(["- v2"])
    asyncio.run(first.scratchpad(7))
    again = run.aids(ScriptedBackend(["- v3"]))  # a controller resuming the run
    assert again.scratch == "- v2"
    asyncio.run(again.scratchpad(9))
    assert len(run.pads()) == 2  # due at 7 + 3, not before
    asyncio.run(again.scratchpad(10))
    assert [(p.version, p.iteration, p.text) for p in run.pads()][-1] == (3, 10, "- v3")
    assert again.ledger.counters.tokens == sum(p.prompt_tokens + p.completion_tokens
                                               for p in run.pads())


def archive_of(fitness: dict[int, list[float]]) -> Archive:
    """Returns an archive with members of the given fitness on each island."""
    archive = Archive(config(search__num_islands=len(fitness)).search, random.Random(0))
    ids = itertools.count(1)
    for island, values in fitness.items():
        for f in values:
            i = next(ids)
            archive.add(Member(id=i, island=island, fitness=f, score=f, code_hash=f"h{i}"))
    return archive


def test_islands_are_reset_after_patience_without_improvement_or_reset(
        sqlite_url: str, tmp_path: Path) -> None:
    cfg = config(search={"num_islands": 2, "island_reset_iterations": 4})
    aids = Aids(sqlite_url, tmp_path / "tiny", cfg).aids()
    archive = archive_of({0: [-5.0, -3.0], 1: [-1.0, -2.0]})
    assert aids.island_resets(archive, 5, last_improvement=2) == []  # 3 < 4
    plan = aids.island_resets(archive, 6, last_improvement=2)
    assert [(island, member.id) for island, member in plan] == [(0, 3)]  # island 1's best
    assert (aids.last_reset, aids.resets) == (6, 1)
    assert aids.island_resets(archive, 9, last_improvement=2) == []  # counted from the reset
    assert aids.island_resets(archive, 10, last_improvement=2) != []
    assert aids.resets == 2


def test_island_resets_are_off_without_patience(sqlite_url: str, tmp_path: Path) -> None:
    aids = Aids(sqlite_url, tmp_path / "tiny", config(search__num_islands=2)).aids()
    archive = archive_of({0: [-5.0], 1: [-1.0]})
    assert aids.island_resets(archive, 1000, last_improvement=0) == [] and aids.resets == 0


def test_restore_takes_the_last_reset_from_replayed_reseed_programs(
        sqlite_url: str, tmp_path: Path) -> None:
    cfg = config(search={"num_islands": 2, "island_reset_iterations": 4})
    aids = Aids(sqlite_url, tmp_path / "tiny", cfg).aids()
    for kind, iteration in (("mutation", 12), ("reseed", 6), ("migrant", 11), ("reseed", 9)):
        aids.restored_program(ProgramRow(kind=kind, iteration=iteration))
    assert aids.last_reset == 9
    archive = archive_of({0: [-5.0], 1: [-1.0]})
    assert aids.island_resets(archive, 12, last_improvement=0) == []  # 12 - 9 < 4
    assert aids.island_resets(archive, 13, last_improvement=0) != []


def test_restore_rebuilds_the_bandit_from_samples_and_waits_for_unfinished_children(
        sqlite_url: str, tmp_path: Path) -> None:
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps([returns(v) for v in (2, 3, 4, 5, 6, 7)] + ["no code"]))
    cfg = config(budget__iterations=7, evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10},
                 llm={"models": [{"backend": "scripted", "name": "a", "model": str(answers)},
                                 {"backend": "scripted", "name": "b", "model": str(answers)}],
                      "selector": "ucb1"})
    llm = make_backend(cfg.llm, Settings(), seed=cfg.seed)
    db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    live = {a.name: (a.pulls, a.reward_sum) for a in llm.bandit.stats()}
    assert sum(p for p, _ in live.values()) == 7
    problem = load_problem(tmp_path / "p")

    def restored() -> SearchAids:
        backend = make_backend(cfg.llm, Settings(), seed=cfg.seed)
        aids = SearchAids(Ledger(db, run.id, "local"), problem, cfg, backend)
        aids.restore(lambda score: None if score is None else problem.direction.fitness(score))
        return aids

    again = restored()
    assert {a.name: (a.pulls, pytest.approx(a.reward_sum)) for a in again.bandit.stats()} == live
    with db.session() as s:  # a child whose result a stopped controller never recorded
        child = s.scalars(select(ProgramRow).where(ProgramRow.run_id == run.id,
                                                   ProgramRow.status == "ok",
                                                   ProgramRow.kind == "mutation")
                          .order_by(ProgramRow.id.desc())).first()
        score = child.score
        child.status = "pending"
        model = s.get(LLMSampleRow, child.sample_id).model
    waiting = restored()
    pulls = {a.name: a.pulls for a in waiting.bandit.stats()}
    assert pulls[model] == live[model][0] - 1  # its reward waits for its result
    waiting.on_result(child, EvalResult("ok", score=score), problem.direction.fitness(score))
    assert {a.name: (a.pulls, pytest.approx(a.reward_sum))
            for a in waiting.bandit.stats()} == live
