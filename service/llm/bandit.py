"""Chooses the ensemble member for each LLM request: UCB1 or Thompson sampling on the improvement
its children bring (optionally per 1k tokens or per unit of cost), or fixed weights. Pure; no
I/O."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

Selector = Literal["ucb1", "thompson", "weighted"]
Objective = Literal["improvement", "per_token", "per_cost"]


@dataclass
class ArmStats:
    """What one member has done so far."""

    name: str
    weight: float = 1.0
    requests: int = 0  # times chosen
    pulls: int = 0  # completions whose outcome is known
    reward_sum: float = 0.0  # normalised rewards in [0, 1]
    raw_sum: float = 0.0  # improvement (per token / per cost) before normalisation
    tokens: int = 0
    cost: float = 0.0

    @property
    def mean(self) -> float:
        """Returns the mean normalised reward (0 before any pull)."""
        return self.reward_sum / self.pulls if self.pulls else 0.0


def improvement(child_fitness: float | None, parent_fitness: float | None) -> float:
    """Returns how much a child beats its parent (fitness: larger is better); 0 for no gain or
    a failed child."""
    if child_fitness is None or parent_fitness is None:
        return 0.0
    gain = child_fitness - parent_fitness
    return gain if math.isfinite(gain) and gain > 0 else 0.0


class ModelBandit:
    """A multi-armed bandit over ensemble members; `choose` then `update` per completion.

    Raw rewards are improvements (optionally divided by the completion's thousands of tokens or
    its cost); they are normalised to [0, 1] by the largest raw reward seen so far, so that UCB1's
    exploration bonus and Thompson's Beta posteriors work whatever the problem's score scale.
    """

    def __init__(self, names: list[str], selector: Selector = "ucb1",
                 objective: Objective = "improvement", exploration: float = 1.0,
                 weights: list[float] | None = None, rng: random.Random | None = None) -> None:
        if not names:
            raise ValueError("ModelBandit needs at least one member")
        weights = weights or [1.0] * len(names)
        self.arms = [ArmStats(n, w) for n, w in zip(names, weights, strict=True)]
        self.index = {a.name: i for i, a in enumerate(self.arms)}
        self.selector, self.objective, self.exploration = selector, objective, exploration
        self.rng = rng or random.Random(0)
        self.scale = 0.0  # largest raw reward seen

    def choose(self) -> int:
        """Returns the index of the member for the next request."""
        index = self._choose()
        self.arms[index].requests += 1
        return index

    def _choose(self) -> int:
        if len(self.arms) == 1:
            return 0
        if self.selector == "weighted":
            return self.rng.choices(range(len(self.arms)), [a.weight for a in self.arms])[0]
        if self.selector == "thompson":
            draws = [self.rng.betavariate(1.0 + a.reward_sum, 1.0 + a.pulls - a.reward_sum)
                     for a in self.arms]
            return max(range(len(draws)), key=lambda i: (draws[i], -i))
        untried = [i for i, a in enumerate(self.arms) if a.pulls == 0 and a.requests == 0]
        if untried:
            return untried[0]
        waiting = [i for i, a in enumerate(self.arms) if a.pulls == 0]
        if waiting:  # chosen, no outcome yet: spread requests until outcomes arrive
            return min(waiting, key=lambda i: (self.arms[i].requests, i))
        total = sum(a.pulls for a in self.arms)
        scores = [a.mean + self.exploration * math.sqrt(2.0 * math.log(total) / a.pulls)
                  for a in self.arms]
        return max(range(len(scores)), key=lambda i: (scores[i], -i))

    def update(self, name: str, gain: float, tokens: int = 0, cost: float = 0.0) -> None:
        """Records one completion of member `name`: its child's improvement (0 for none), and
        what it cost. Unknown names (e.g. a member removed from the config) are ignored."""
        i = self.index.get(name)
        if i is None:
            return
        arm = self.arms[i]
        arm.pulls += 1
        arm.tokens += tokens
        arm.cost += cost
        arm.raw_sum += self._raw(gain, tokens, cost)
        self.scale = max(self.scale, self._raw(gain, tokens, cost))
        for each in self.arms:  # normalised by the largest raw reward seen so far
            each.reward_sum = each.raw_sum / self.scale if self.scale > 0 else 0.0

    def _raw(self, gain: float, tokens: int, cost: float) -> float:
        if gain <= 0:
            return 0.0
        if self.objective == "per_token":
            return gain / max(tokens / 1000.0, 1e-3)
        if self.objective == "per_cost":
            return gain / max(cost, 1e-9) if cost > 0 else gain
        return gain

    def stats(self) -> list[ArmStats]:
        """Returns each member's statistics, in config order."""
        return list(self.arms)
