"""Training rounds scheduled inside a run (rl.enabled): every n children, within the budgets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from service.db import Database
from service.db.models import AdapterRow, LLMSampleRow, ProgramRow, RunRow
from service.llm.base import AdapterSupport, Completion, Message, Sampling
from service.llm.scripted import ScriptedBackend
from service.problems.load import load_problem
from service.rl.rollouts import EvolutionReward, training_prompts
from service.runs import create_run
from tests.service.driver import drive
from tests.service.engine_helpers import config, returns, tiny_problem

pytestmark = pytest.mark.llm  # the real SmolLM2 (trained, converted, served)

TINY_RL = {"steps": 1, "group_size": 2, "max_completion_tokens": 16, "threads": 1}


class AdapterScripted(ScriptedBackend):
    """The scripted double plus load_adapter: completions name the adapter loaded last."""

    adapters = AdapterSupport.LOCAL

    def __init__(self, answers: list[str]) -> None:
        super().__init__(answers, max_concurrency=1)
        self.adapter: str | None = None
        self.loaded: list[tuple[str | None, Path | None]] = []

    def load_adapter(self, name: str | None, folder: Path | None) -> None:
        self.loaded.append((name, folder))
        self.adapter = name

    async def generate(self, prompts: list[list[Message]], n: int,
                       sampling: Sampling) -> list[list[Completion]]:
        out = await super().generate(prompts, n, sampling)
        for batch in out:
            for c in batch:
                c.adapter = self.adapter
        return out


def test_enabled_rl_trains_every_n_children_and_the_next_children_use_the_adapter(
        sqlite_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EVOFORGE_HOME", str(tmp_path / "home"))
    cfg = config(budget__iterations=6, evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10},
                 rl={**TINY_RL, "enabled": True, "every_n_children": 3})
    llm = AdapterScripted([returns(3), returns(5), returns(7), returns(8)])
    db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "tiny"), cfg, llm)
    run_id = run.id
    name = f"run{run_id}-v1"
    assert [n for n, _ in llm.loaded] == [name]  # initial + 2 children evaluated -> one round
    with db.session() as s:
        loop = s.scalars(select(ProgramRow).where(ProgramRow.run_id == run_id,
                                                  ProgramRow.kind == "mutation")
                         .order_by(ProgramRow.id)).all()
        assert s.scalar(select(AdapterRow.name).where(AdapterRow.run_id == run_id)) == name
        samples = s.scalars(select(LLMSampleRow.adapter).where(LLMSampleRow.run_id == run_id)
                            .order_by(LLMSampleRow.id)).all()
    # two samples by the base model, the round's two (they count in the budget), two by v1
    assert samples == [None, None, f"{name}-training", f"{name}-training", name, name]
    assert [p.adapter for p in loop][-2:] == [name, name] and all(p.model for p in loop)


def test_a_round_without_room_in_the_budget_is_skipped(sqlite_url: str, tmp_path: Path,
                                                       monkeypatch) -> None:
    monkeypatch.setenv("EVOFORGE_HOME", str(tmp_path / "home"))
    cfg = config(budget__iterations=3, evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10},
                 rl={**TINY_RL, "enabled": True, "every_n_children": 3})
    llm = AdapterScripted([returns(3), returns(5), returns(7)])
    # due after 2 children, but a 2-completion step does not fit in 1 left
    db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "tiny"), cfg, llm)
    run_id = run.id
    with db.session() as s:
        assert s.scalar(select(AdapterRow.id).where(AdapterRow.run_id == run_id)) is None
        assert s.get(RunRow, run_id).iterations == 3
    assert llm.loaded == []


class RolloutRound:
    """A training hook whose one round is real rollouts (EvolutionReward: stored, evaluated,
    counted children) of long completions, without the GRPO step around them."""

    def __init__(self, db, run_id: int, problem, cfg, tokens: int) -> None:
        self.db, self.run_id, self.problem, self.cfg, self.tokens = db, run_id, problem, cfg, tokens
        self.done = False

    def due(self, evaluations: int) -> bool:
        return not self.done and evaluations >= 2

    async def train(self, evaluations: int, paused, report=None) -> list[ProgramRow]:
        self.done = True
        prompt = training_prompts(self.db, self.run_id, count=1, recent=8)[0]
        fn = EvolutionReward(self.db, self.run_id, self.problem, self.cfg, model="m",
                             adapter="round", max_completion_tokens=10 * self.tokens)
        await asyncio.to_thread(fn, [prompt.messages] * 2, [returns(6), returns(7)],
                                parent_id=[prompt.parent_id] * 2,
                                completion_ids=[[0] * self.tokens] * 2)
        with self.db.session() as s:
            return list(s.scalars(select(ProgramRow).where(ProgramRow.adapter == "round")))

    async def settle(self, paused) -> None:
        return None


def test_tokens_that_rl_rounds_spend_count_in_the_token_budget(sqlite_url: str,
                                                              tmp_path: Path) -> None:
    cfg = config(budget={"iterations": 50, "tokens": 3000},
                 evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10})
    folder = tiny_problem(tmp_path / "tiny")
    db = Database(sqlite_url)
    run_id = create_run(db, load_problem(folder), cfg)
    hook = RolloutRound(db, run_id, load_problem(folder), cfg, tokens=2000)
    llm = ScriptedBackend([returns(v) for v in range(2, 60)], max_concurrency=1)
    _, run, engine = drive(db, folder, cfg, llm, run_id=run_id, training=hook)
    with db.session() as s:
        samples = s.scalars(select(LLMSampleRow).where(LLMSampleRow.run_id == run_id)
                            .order_by(LLMSampleRow.id)).all()
    assert hook.done and run.stop_reason == "budget of 3000 tokens reached"
    assert samples[-1].adapter == "round"  # the round's 4000 tokens stopped the run at once
    assert engine.counters.tokens == run.prompt_tokens + run.completion_tokens >= 4000
    assert engine.counters.llm_calls == run.llm_calls and engine.counters.cost == run.cost
