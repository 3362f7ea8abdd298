"""The model bandit on fixed reward sequences; ensemble wiring through the engine."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.config import Settings, build_run_config
from service.db.models import LLMSampleRow
from service.evolution.stats import run_stats
from service.llm.bandit import ModelBandit, improvement
from service.llm.base import Sampling
from service.llm.ensemble import EnsembleBackend
from service.llm.factory import make_backend
from tests.service.engine_helpers import config, returns, tiny_problem
from tests.service.search_helpers import drive


def test_improvement_counts_only_gains_of_scored_children() -> None:
    assert improvement(3.0, 1.0) == 2.0
    assert improvement(1.0, 3.0) == 0.0
    assert improvement(None, 1.0) == 0.0
    assert improvement(float("nan"), 1.0) == 0.0


def test_ucb1_tries_every_arm_first_then_follows_the_rewarding_one() -> None:
    bandit = ModelBandit(["a", "b", "c"], "ucb1", exploration=0.5)
    first = []
    for _ in range(3):
        arm = bandit.choose()
        first.append(arm)
        bandit.update(bandit.arms[arm].name, 1.0 if arm == 1 else 0.0)
    assert first == [0, 1, 2]
    picks = []
    for _ in range(30):
        arm = bandit.choose()
        picks.append(arm)
        bandit.update(bandit.arms[arm].name, 1.0 if arm == 1 else 0.0)
    assert picks.count(1) >= 24
    assert bandit.arms[1].mean == pytest.approx(1.0) and bandit.arms[0].mean == 0.0


def test_ucb1_exact_choices_on_a_fixed_sequence() -> None:
    bandit = ModelBandit(["a", "b"], "ucb1", exploration=1.0)
    rewards = {"a": [0.0, 0.0, 0.0, 0.0], "b": [2.0, 0.0, 2.0, 0.0]}
    seen: dict[str, int] = {"a": 0, "b": 0}
    choices = []
    for _ in range(8):
        name = bandit.arms[bandit.choose()].name
        choices.append(name)
        bandit.update(name, rewards[name][seen[name] % 4])
        seen[name] += 1
    # by hand: round 5 a's bonus sqrt(2 ln 4 / 1) = 1.665 beats b's 2/3 + sqrt(2 ln 4 / 3) = 1.628
    assert choices == ["a", "b", "b", "b", "a", "b", "b", "b"]


def test_thompson_is_deterministic_under_a_seed_and_prefers_the_better_arm() -> None:
    def play(seed: int) -> list[int]:
        bandit = ModelBandit(["a", "b"], "thompson", rng=random.Random(seed))
        out = []
        for _ in range(60):
            arm = bandit.choose()
            out.append(arm)
            bandit.update(bandit.arms[arm].name, 1.0 if arm == 0 else 0.1)
        return out
    assert play(7) == play(7)
    assert play(7) != play(8)
    assert play(7)[30:].count(0) >= 22


def test_rewards_are_normalised_by_the_largest_gain_so_far() -> None:
    bandit = ModelBandit(["a", "b"])
    bandit.update("a", 10.0)
    bandit.update("b", 5.0)
    bandit.update("b", 20.0)
    assert bandit.scale == 20.0
    assert bandit.arms[0].mean == pytest.approx(0.5)
    assert bandit.arms[1].mean == pytest.approx((5 + 20) / 20 / 2)


def test_per_token_objective_favours_the_cheaper_member_with_equal_gains() -> None:
    bandit = ModelBandit(["short", "long"], "ucb1", objective="per_token", exploration=0.1)
    for _ in range(10):
        name = bandit.arms[bandit.choose()].name
        bandit.update(name, 1.0, tokens=200 if name == "short" else 2000)
    assert bandit.arms[0].mean > bandit.arms[1].mean
    assert bandit.arms[0].pulls > bandit.arms[1].pulls


def test_per_cost_objective_divides_gains_by_cost() -> None:
    bandit = ModelBandit(["cheap", "dear"], objective="per_cost")
    bandit.update("cheap", 1.0, cost=0.01)
    bandit.update("dear", 1.0, cost=0.1)
    assert bandit.arms[0].raw_sum == pytest.approx(10 * bandit.arms[1].raw_sum)


def test_weighted_selector_follows_the_weights() -> None:
    bandit = ModelBandit(["a", "b"], "weighted", weights=[9.0, 1.0], rng=random.Random(1))
    picks = [bandit.choose() for _ in range(500)]
    assert 400 <= picks.count(0) <= 490


def test_unknown_member_names_are_ignored() -> None:
    bandit = ModelBandit(["a"])
    bandit.update("gone", 5.0)
    assert bandit.arms[0].pulls == 0 and bandit.scale == 0.0


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


def test_runs_show_prints_per_model_statistics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps([returns(v) for v in (4, 8)]))
    cfg = config(budget__iterations=4, llm={"models": [
        {"backend": "scripted", "name": "m1", "model": str(answers)},
        {"backend": "scripted", "name": "m2", "model": str(answers)}]})
    _, run, _ = drive(url, tiny_problem(tmp_path / "p"), cfg, make_backend(cfg.llm, Settings()))
    from typer.testing import CliRunner

    from service.cli.app import app
    runner = CliRunner()
    shown = runner.invoke(app, ["runs", "show", str(run.id), "--db", url],
                          env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "m1" in shown.output and "m2" in shown.output and "too_similar" in shown.output
    data = json.loads(runner.invoke(app, ["runs", "show", str(run.id), "--db", url,
                                          "--json"]).output)
    assert {m["key"] for m in data["models"]} == {"m1", "m2"}
    assert sum(m["samples"] for m in data["models"]) == 4
    missing = runner.invoke(app, ["runs", "show", "999", "--db", url])
    assert missing.exit_code == 1 and "no run 999" in missing.output
