"""The model ensemble: members labelled and priced, and wired through the engine to its bandit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.config import build_run_config
from service.db.models import LLMSampleRow
from service.evolution.stats import run_stats
from service.llm.base import Sampling
from service.llm.ensemble import EnsembleBackend
from service.llm.factory import make_backend
from service.settings import Settings
from tests.service.driver import drive
from tests.service.engine_helpers import config, returns, tiny_problem


def test_ensemble_labels_completions_and_prices_them() -> None:
    cfg = build_run_config({"llm": {"models": [
        {"backend": "scripted", "name": "cheap", "price_per_1k_tokens": 1.0,
         "temperatures": [0.2]},
        {"backend": "scripted", "name": "dear", "price_per_1k_tokens": 10.0}]}}).llm
    ens = make_backend(cfg, Settings())
    assert isinstance(ens, EnsembleBackend) and ens.labels == ["cheap", "dear"]
    import asyncio

    from service.llm.base import Message
    msgs = [[Message("user", "```python\nx = 1\n```")]]
    first = asyncio.run(ens.generate(msgs, 1, Sampling(temperature=0.9)))[0][0]
    second = asyncio.run(ens.generate(msgs, 1, Sampling(temperature=0.9)))[0][0]
    assert (first.model, second.model) == ("cheap", "dear")  # UCB1 tries each once
    assert first.extra["temperature"] == 0.2 and second.extra["temperature"] == 0.9
    tokens = second.prompt_tokens + second.completion_tokens
    assert second.extra["cost"] == pytest.approx(tokens * 10.0 / 1000)


def test_duplicate_member_names_are_a_config_error() -> None:
    from service.config import ConfigError
    with pytest.raises(ConfigError, match="share a name"):
        build_run_config({"llm": {"models": [{"backend": "scripted"}, {"backend": "scripted"}]}})


def test_engine_sends_more_requests_to_the_member_whose_children_improve(
        db_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps([returns(v) for v in (2, 3, 4, 5, 6, 7, 8, 9, 10)]))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(["I cannot help with that."]))
    cfg = config(budget__iterations=16, evaluation={"workers": 1, "in_flight": 1, "timeout_s": 10},
                 llm={"models": [{"backend": "scripted", "name": "good", "model": str(good),
                                  "price_per_1k_tokens": 2.0},
                                 {"backend": "scripted", "name": "bad", "model": str(bad)}],
                      "selector": "ucb1", "bandit_exploration": 0.3})
    llm = make_backend(cfg.llm, Settings(), seed=cfg.seed)
    db, run, _engine = drive(db_url, tiny_problem(tmp_path / "p"), cfg, llm)
    assert run.status == "completed" and run.best_score == 0.0
    arms = {a.name: a for a in llm.bandit.stats()}
    assert arms["good"].requests >= 12 and arms["bad"].requests >= 1
    with db.session() as s:
        stats = run_stats(s, run.id)
        by_model = {g.key: g for g in stats.models}
        models = dict(s.execute(select(LLMSampleRow.model, func.count()).where(
            LLMSampleRow.run_id == run.id).group_by(LLMSampleRow.model)).all())
    assert models == {"good": arms["good"].requests, "bad": arms["bad"].requests}
    assert by_model["bad"].outcomes == {"rejected": arms["bad"].requests}
    assert by_model["good"].improved >= 8 and by_model["bad"].improved == 0
    assert by_model["good"].cost == pytest.approx(by_model["good"].tokens * 2.0 / 1000)
    assert run.cost == pytest.approx(by_model["good"].cost) and by_model["bad"].cost == 0.0
    assert sum(g.tokens for g in stats.islands) == run.prompt_tokens + run.completion_tokens
    # a resumed engine rebuilds the same bandit statistics from the rows
    cfg2 = cfg.model_copy(deep=True)
    cfg2.budget.iterations = 16
    llm2 = make_backend(cfg2.llm, Settings(), seed=cfg.seed)
    drive(db_url, tmp_path / "p", cfg2, llm2, run_id=run.id)
    again = {a.name: a for a in llm2.bandit.stats()}
    assert again["good"].pulls == arms["good"].pulls
    assert again["good"].reward_sum == pytest.approx(arms["good"].reward_sum)
