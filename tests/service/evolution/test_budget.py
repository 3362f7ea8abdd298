"""Tokens and cost per model, island and run; budgets stop a run at the first call reaching them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from service.db.models import LLMSampleRow
from service.evolution.stats import run_stats
from service.llm.factory import make_backend
from service.llm.scripted import ScriptedBackend
from service.settings import Settings
from tests.service.driver import drive
from tests.service.engine_helpers import config, returns, tiny_problem


def _calls(db, run_id: int) -> list[list[LLMSampleRow]]:
    """Returns the run's samples grouped by LLM call, in call order."""
    with db.session() as s:
        rows = list(s.scalars(select(LLMSampleRow).filter_by(run_id=run_id)
                              .order_by(LLMSampleRow.id)))
    calls: dict[str, list[LLMSampleRow]] = {}
    for r in rows:
        calls.setdefault(r.group_id, []).append(r)
    return list(calls.values())


@pytest.mark.llm
def test_token_budget_stops_a_real_run_at_the_call_that_reaches_it(
        sqlite_url: str, tmp_path: Path) -> None:
    cfg = config(budget={"iterations": 50, "tokens": 700},
                 llm={"backend": "llamacpp", "max_tokens": 64, "price_per_1k_tokens": 0.5},
                 evaluation={"workers": 1, "timeout_s": 10})
    llm = make_backend(cfg.llm, Settings(), seed=cfg.seed)
    try:
        db, run, _ = drive(sqlite_url, tiny_problem(tmp_path / "p"), cfg, llm)
    finally:
        asyncio.run(llm.aclose())
    tokens = run.prompt_tokens + run.completion_tokens
    calls = _calls(db, run.id)
    last = sum(r.prompt_tokens + r.completion_tokens for r in calls[-1])
    assert run.stop_reason == "budget of 700 tokens reached"
    assert tokens - last < 700 <= tokens  # no call started once the budget was reached
    assert run.llm_calls == len(calls) >= 2
    assert run.cost == pytest.approx(tokens * 0.5 / 1000)
    with db.session() as s:
        stats = run_stats(s, run.id)
    assert [m.key for m in stats.models] == [calls[0][0].model]
    assert stats.models[0].tokens == tokens == sum(i.tokens for i in stats.islands)
    assert stats.models[0].cost == pytest.approx(run.cost)


def test_cost_budget_of_an_ensemble_stops_at_the_call_that_reaches_it(
        db_url: str, tmp_path: Path) -> None:
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps([returns(v) for v in range(2, 12)]))
    members = [{"backend": "scripted", "name": "cheap", "model": str(answers),
                "price_per_1k_tokens": 1.0},
               {"backend": "scripted", "name": "dear", "model": str(answers),
                "price_per_1k_tokens": 5.0}]
    cfg = config(budget={"iterations": 100, "cost": 1.5},
                 llm={"models": members, "selector": "weighted"},
                 evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10})
    llm = make_backend(cfg.llm, Settings(), seed=cfg.seed)
    for member in llm.members:
        member.max_concurrency = 1  # one request at a time: the stop is exact
    llm.max_concurrency = 1
    db, run, _ = drive(db_url, tiny_problem(tmp_path / "p"), cfg, llm)
    calls = _calls(db, run.id)
    last = sum(r.cost for r in calls[-1])
    assert run.stop_reason == "budget of 1.5 cost reached"
    assert run.cost - last < 1.5 <= run.cost
    with db.session() as s:
        stats = run_stats(s, run.id)
    by_model = {m.key: m for m in stats.models}
    assert set(by_model) == {"cheap", "dear"}
    assert by_model["cheap"].cost == pytest.approx(by_model["cheap"].tokens / 1000)
    assert by_model["dear"].cost == pytest.approx(by_model["dear"].tokens * 5 / 1000)
    assert sum(m.cost for m in stats.models) == pytest.approx(run.cost)
    assert sum(i.cost for i in stats.islands) == pytest.approx(run.cost)
    assert {i.key for i in stats.islands} == {"0", "1"}


def test_llm_call_budget_is_exact_and_counters_survive_resume(
        sqlite_url: str, tmp_path: Path) -> None:
    cfg = config(budget={"iterations": 100, "llm_calls": 3},
                 llm={"backend": "scripted", "price_per_1k_tokens": 2.0})
    folder = tiny_problem(tmp_path / "p")
    _db, run, _ = drive(sqlite_url, folder, cfg, ScriptedBackend([returns(5)], max_concurrency=1))
    assert run.llm_calls == 3 and run.stop_reason == "budget of 3 LLM calls reached"
    first_cost = run.cost
    assert first_cost == pytest.approx((run.prompt_tokens + run.completion_tokens) * 2 / 1000)
    cfg.budget.llm_calls = 5
    _, run2, engine = drive(sqlite_url, folder, cfg,
                            ScriptedBackend([returns(6)], max_concurrency=1), run_id=run.id)
    assert run2.llm_calls == 5 and run2.cost > first_cost
    assert engine.counters.cost == pytest.approx(run2.cost)
