"""Rewards and lazy penalties as small named functions, configured per run."""

from __future__ import annotations

import pytest

from service.config import ConfigError, PenaltyConfig, RewardConfig, build_run_config
from service.problems.direction import Direction
from service.rl.rewards import ChildOutcome, improvement, penalty, reward, shaped_score

PENALTIES = PenaltyConfig(no_edit=-1.0, unchanged=-0.5, duplicate=-0.3, execution_error=-0.9,
                          invalid_result=-0.7)


def test_shaped_score_normalises_clips_and_shapes() -> None:
    assert shaped_score(0.5, 0.0, 1.0) == pytest.approx(0.5)
    assert shaped_score(0.5, 0.0, 1.0, alpha=2.0, scale=4.0) == pytest.approx(1.0)
    assert shaped_score(7.0, 0.0, 2.0) == pytest.approx(1.0)  # clipped above
    assert shaped_score(-3.0, 0.0, 2.0) == pytest.approx(0.0)  # clipped below
    assert shaped_score(0.25, 0.0, 1.0, direction=Direction.MINIMIZE) == pytest.approx(0.75)


def test_shaped_score_refuses_an_empty_range() -> None:
    with pytest.raises(ValueError, match="low < high"):
        shaped_score(1.0, 2.0, 2.0)


def test_improvement_follows_the_direction_and_needs_a_parent() -> None:
    assert improvement(0.8, 0.5) == pytest.approx(0.3)
    assert improvement(0.8, 0.5, scale=10.0) == pytest.approx(3.0)
    assert improvement(0.8, 0.5, direction=Direction.MINIMIZE) == pytest.approx(-0.3)
    assert improvement(0.8, None) == 0.0


@pytest.mark.parametrize(("outcome", "expected"), [
    (ChildOutcome("rejected"), -1.0),
    (ChildOutcome("unchanged"), -0.5),
    (ChildOutcome("duplicate"), -0.3),
    (ChildOutcome("child", failure_kind="exception"), -0.9),
    (ChildOutcome("child", failure_kind="timeout"), -0.9),
    (ChildOutcome("child", failure_kind="invalid_metrics"), -0.7),
    (ChildOutcome("child", failure_kind="missing_score"), -0.7),
    (ChildOutcome("child", score=1.0, parent_score=0.5), None),
])
def test_penalties_name_each_way_a_child_can_fail(outcome: ChildOutcome,
                                                  expected: float | None) -> None:
    assert penalty(outcome, PENALTIES) == expected


def test_reward_uses_the_configured_function() -> None:
    scored = ChildOutcome("child", score=0.75, parent_score=0.5)
    assert reward(scored, RewardConfig(), PENALTIES) == pytest.approx(0.25)
    shaped = RewardConfig(name="shaped_score", low=0.5, high=1.0, alpha=1.0, scale=2.0)
    assert reward(scored, shaped, PENALTIES) == pytest.approx(1.0)
    assert reward(ChildOutcome("rejected"), shaped, PENALTIES) == -1.0


def test_run_config_rejects_a_shaped_reward_without_a_range() -> None:
    with pytest.raises(ConfigError, match=r"rl\.reward\.low < rl\.reward\.high"):
        build_run_config({"rl": {"reward": {"name": "shaped_score", "low": 1.0}}})
    with pytest.raises(ConfigError, match=r"unknown key 'rl\.every_n'"):
        build_run_config({"rl": {"every_n": 3}})
    cfg = build_run_config({"rl": {"enabled": True, "penalties": {"no_edit": -2.0}}})
    assert cfg.rl.enabled and cfg.rl.penalties.no_edit == -2.0
