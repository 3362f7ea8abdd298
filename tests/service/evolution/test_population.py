"""Which scored programs the population takes in."""

from __future__ import annotations

import pytest

from service.evolution.population import marked_invalid


@pytest.mark.parametrize(("metrics", "invalid"), [
    ({"combined_score": 0.0, "validity": 0.0}, True),
    ({"combined_score": 0.0, "validity": 0}, True),
    ({"combined_score": 0.9, "validity": 1.0}, False),
    ({"combined_score": 0.4, "validity": 0.5}, False),   # a graded validity is not a verdict
    ({"combined_score": 0.0}, False),                    # no verdict: scored like any other
    ({"validity": False}, True),
    ({"validity": "0"}, False),
    (None, False),
])
def test_a_program_is_invalid_only_when_its_evaluator_says_validity_0(
        metrics: dict | None, invalid: bool) -> None:
    assert marked_invalid(metrics) is invalid
