"""EvaluationResult as OpenEvolve evaluators construct it: metrics plus artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EvaluationResult:
    """Metrics (numbers) and artifacts (text or bytes feedback) of one evaluation."""

    metrics: dict[str, float]
    artifacts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, metrics: dict[str, float]) -> EvaluationResult:
        """Returns a result holding only metrics."""
        return cls(metrics=metrics)

    def to_dict(self) -> dict[str, float]:
        """Returns the metrics."""
        return self.metrics

    def has_artifacts(self) -> bool:
        """Returns True when there are artifacts."""
        return bool(self.artifacts)
