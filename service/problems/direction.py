"""Score orientation, in one place: which way is better, fitness (larger is better), and the
words prompts use for it."""

from __future__ import annotations

import math
from enum import StrEnum


class Direction(StrEnum):
    """Whether a problem's score is maximised or minimised (problem.toml `direction`)."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"

    @property
    def sign(self) -> float:
        """Returns +1.0 when maximising, -1.0 when minimising: fitness = sign * score."""
        return 1.0 if self is Direction.MAXIMIZE else -1.0

    def fitness(self, score: float | None) -> float:
        """Returns the score oriented so that larger is always better (None and NaN are worst)."""
        if score is None or math.isnan(score):
            return -math.inf
        return self.sign * score

    def better(self, a: float | None, b: float | None) -> bool:
        """Returns True when score a is strictly better than score b (None is worst)."""
        if a is None:
            return False
        return b is None or self.fitness(a) > self.fitness(b)

    def gain(self, new: float, old: float) -> float:
        """Returns how much better new is than old (negative when worse)."""
        return self.sign * (new - old)

    @property
    def goal(self) -> str:
        """Returns "higher" or "lower": where a better score lies."""
        return "higher" if self is Direction.MAXIMIZE else "lower"

    @property
    def phrase(self) -> str:
        """Returns how a reader compares scores ("higher is better")."""
        return f"{self.goal} is better"
