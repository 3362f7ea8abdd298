"""vs_openevolve's report pairs the two systems by seed and tests the difference."""

from __future__ import annotations

import pytest

from benchmarks.peers.vs_openevolve import seed_list
from benchmarks.peers.vs_report import markdown, paired, summary


def _run(system: str, seed: int, best: float | None, direction: str = "maximize") -> dict:
    return {"problem": "p", "system": system, "seed": seed, "direction": direction,
            "initial_strict": 1.0, "best_strict": best, "strict_status": "ok", "llm_calls": 2,
            "tokens": 10, "wall_s": 2.0, "llm_busy_s": 1.0, "distinct_completions": 2,
            "eval_s_mean": 0.1, "iterations": 2, "curve": [1.0, best or 1.0], "model": "m"}


def test_pairs_seeds_and_counts_wins_ties_and_losses() -> None:
    rows = [_run("evoforge", 0, 2.0), _run("openevolve", 0, 1.0),
            _run("evoforge", 1, 1.5), _run("openevolve", 1, 1.5),
            _run("evoforge", 2, 1.0), _run("openevolve", 2, 1.2),
            _run("evoforge", 3, 3.0)]  # no OpenEvolve run of seed 3: not paired
    (p,) = paired(rows)
    assert p["seeds"] == 3
    assert (p["wins"], p["ties"], p["losses"]) == (1, 1, 1)
    assert p["mean"] == pytest.approx((1.0 + 0.0 - 0.2) / 3)
    assert p["ci"][0] <= p["mean"] <= p["ci"][1]
    assert p["improved"] == {"evoforge": 2, "openevolve": 2}
    assert p["improved_only"] == {"evoforge": 1, "openevolve": 1} and p["improved_p"] == 1.0
    assert "1 / 1 / 1" in markdown(rows, summary(rows))


def test_a_minimising_problem_counts_a_lower_best_as_a_win() -> None:
    rows = [_run("evoforge", 0, 0.5, "minimize"), _run("openevolve", 0, 0.9, "minimize")]
    (p,) = paired(rows)
    assert p["wins"] == 1 and p["mean"] == pytest.approx(0.4)


def test_seed_ranges_are_inclusive_and_mix_with_lists() -> None:
    assert seed_list("0..3,7") == [0, 1, 2, 3, 7]
    with pytest.raises(ValueError):
        seed_list("a..b")
