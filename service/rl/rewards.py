"""Rewards for RL on the mutation model: a child's evaluation (or why it has none) -> one number.

Scores are shaped by small named functions; children that were never evaluated (no applicable
edit, identical to the parent or to a program already in the run) or whose evaluation failed get
lazy penalties, so training never waits on an evaluation that cannot tell it anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluators.jobs import FailureKind
from service.config import PenaltyConfig, RewardConfig
from service.db.status import SampleOutcome
from service.problems.direction import Direction

INVALID_RESULTS = frozenset({FailureKind.INVALID_METRICS, FailureKind.MISSING_SCORE,
                             FailureKind.CASCADE})
LAZY = {  # completions that give no new program to evaluate, and their penalties
    SampleOutcome.REJECTED: lambda p: p.no_edit,
    SampleOutcome.UNCHANGED: lambda p: p.unchanged,
    SampleOutcome.DUPLICATE: lambda p: p.duplicate,
    SampleOutcome.TOO_SIMILAR: lambda p: p.duplicate,  # novelty rejection: a near-duplicate
}


@dataclass(frozen=True)
class ChildOutcome:
    """What became of one completion: the edit outcome and, when evaluated, its result."""

    outcome: SampleOutcome
    score: float | None = None
    parent_score: float | None = None
    failure_kind: str | None = None


def shaped_score(score: float, low: float, high: float, alpha: float = 1.0,
                 scale: float = 1.0, direction: Direction = Direction.MAXIMIZE) -> float:
    """Returns u**alpha * scale with u = (clip(score, low, high) - low) / (high - low), or 1 - u
    when minimising."""
    if high <= low:
        raise ValueError(f"shaped_score needs low < high, got low={low}, high={high}")
    unit = (min(max(score, low), high) - low) / (high - low)
    if direction is Direction.MINIMIZE:
        unit = 1.0 - unit
    return unit**alpha * scale


def improvement(score: float, parent_score: float | None, scale: float = 1.0,
                direction: Direction = Direction.MAXIMIZE) -> float:
    """Returns how much better score is than parent_score (0 without parent_score), times scale."""
    if parent_score is None:
        return 0.0
    return direction.gain(score, parent_score) * scale


def penalty(outcome: ChildOutcome, penalties: PenaltyConfig) -> float | None:
    """Returns the lazy penalty for a child without a usable score, or None when it has one."""
    if outcome.outcome in LAZY:
        return LAZY[outcome.outcome](penalties)
    if outcome.failure_kind in INVALID_RESULTS:
        return penalties.invalid_result
    if outcome.failure_kind is not None or outcome.score is None:
        return penalties.execution_error
    return None


def score_reward(score: float, parent_score: float | None, cfg: RewardConfig,
                 direction: Direction = Direction.MAXIMIZE) -> float:
    """Returns the reward cfg names for a scored child."""
    if cfg.name == "shaped_score":
        assert cfg.low is not None and cfg.high is not None  # checked by RewardConfig
        return shaped_score(score, cfg.low, cfg.high, cfg.alpha, cfg.scale, direction)
    if cfg.name == "improvement":
        return improvement(score, parent_score, cfg.scale, direction)
    raise ValueError(f"rl.reward.name = {cfg.name!r} is unknown; use improvement or shaped_score")


def reward(outcome: ChildOutcome, cfg: RewardConfig, penalties: PenaltyConfig,
           direction: Direction = Direction.MAXIMIZE) -> float:
    """Returns a child's reward: its lazy penalty, else its score's reward."""
    lazy = penalty(outcome, penalties)
    if lazy is not None:
        return lazy
    assert outcome.score is not None
    return score_reward(outcome.score, outcome.parent_score, cfg, direction)
