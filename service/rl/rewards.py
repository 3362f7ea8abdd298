"""Rewards for RL on the mutation model: a child's evaluation (or why it has none) -> one number.

Scores are shaped by small named functions; children that were never evaluated (no applicable
edit, identical to the parent or to a program already in the run) or whose evaluation failed get
lazy penalties, so training never waits on an evaluation that cannot tell it anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluators.jobs import FailureKind
from service.config import PenaltyConfig, RewardConfig

EXECUTION_ERRORS = frozenset({FailureKind.TIMEOUT, FailureKind.MEMORY, FailureKind.CRASH,
                              FailureKind.EXCEPTION, FailureKind.EVALUATOR, FailureKind.OUTPUT})
INVALID_RESULTS = frozenset({FailureKind.INVALID_METRICS, FailureKind.MISSING_SCORE,
                             FailureKind.CASCADE})


@dataclass(frozen=True)
class ChildOutcome:
    """What became of one completion: the edit outcome and, when evaluated, its result."""

    outcome: str  # child | rejected | unchanged | duplicate
    score: float | None = None
    parent_score: float | None = None
    failure_kind: str | None = None


def shaped_score(score: float, low: float, high: float, alpha: float = 1.0,
                 scale: float = 1.0, maximize: bool = True) -> float:
    """Returns ((clip(score, low, high) - low) / (high - low))^alpha * scale (1 - that, minimising)."""
    if high <= low:
        raise ValueError(f"shaped_score needs low < high, got low={low}, high={high}")
    unit = (min(max(score, low), high) - low) / (high - low)
    if not maximize:
        unit = 1.0 - unit
    return unit**alpha * scale


def improvement(score: float, parent_score: float | None, scale: float = 1.0,
                maximize: bool = True) -> float:
    """Returns how much better score is than parent_score (0 without a parent score), times scale."""
    if parent_score is None:
        return 0.0
    gain = score - parent_score
    return (gain if maximize else -gain) * scale


def penalty(outcome: ChildOutcome, penalties: PenaltyConfig) -> float | None:
    """Returns the lazy penalty for a child without a usable score, or None when it has one."""
    if outcome.outcome == "rejected":
        return penalties.no_edit
    if outcome.outcome == "unchanged":
        return penalties.unchanged
    if outcome.outcome == "duplicate":
        return penalties.duplicate
    if outcome.failure_kind in INVALID_RESULTS:
        return penalties.invalid_result
    if outcome.failure_kind is not None or outcome.score is None:
        return penalties.execution_error
    return None


def score_reward(score: float, parent_score: float | None, cfg: RewardConfig,
                 maximize: bool = True) -> float:
    """Returns the reward cfg names for a scored child."""
    if cfg.name == "shaped_score":
        assert cfg.low is not None and cfg.high is not None  # checked by RewardConfig
        return shaped_score(score, cfg.low, cfg.high, cfg.alpha, cfg.scale, maximize)
    if cfg.name == "improvement":
        return improvement(score, parent_score, cfg.scale, maximize)
    raise ValueError(f"rl.reward.name = {cfg.name!r} is unknown; use improvement or shaped_score")


def reward(outcome: ChildOutcome, cfg: RewardConfig, penalties: PenaltyConfig,
           maximize: bool = True) -> float:
    """Returns a child's reward: its lazy penalty, else its score's reward."""
    lazy = penalty(outcome, penalties)
    if lazy is not None:
        return lazy
    assert outcome.score is not None
    return score_reward(outcome.score, outcome.parent_score, cfg, maximize)
