"""service.problems.direction: which way is better, fitness, gains and the words prompts use."""

from __future__ import annotations

import math

import pytest

from service.problems.direction import Direction

MAX, MIN = Direction.MAXIMIZE, Direction.MINIMIZE


def test_fitness_is_larger_for_better_scores_in_both_directions() -> None:
    assert (MAX.fitness(2.5), MIN.fitness(2.5)) == (2.5, -2.5)
    assert MAX.fitness(3.0) > MAX.fitness(1.0) and MIN.fitness(1.0) > MIN.fitness(3.0)
    assert (MAX.sign, MIN.sign) == (1.0, -1.0)


@pytest.mark.parametrize("direction", [MAX, MIN])
def test_a_missing_or_nan_score_is_the_worst_fitness(direction: Direction) -> None:
    assert direction.fitness(None) == -math.inf
    assert direction.fitness(float("nan")) == -math.inf
    assert direction.fitness(-1e308) > direction.fitness(None)


def test_better_is_strict_and_follows_the_direction() -> None:
    assert MAX.better(2.0, 1.0) and not MAX.better(1.0, 2.0)
    assert MIN.better(1.0, 2.0) and not MIN.better(2.0, 1.0)
    assert not MAX.better(1.0, 1.0) and not MIN.better(1.0, 1.0)


@pytest.mark.parametrize("direction", [MAX, MIN])
def test_better_falls_back_on_missing_scores(direction: Direction) -> None:
    assert direction.better(-5.0, None)  # any score beats none (the first scored program)
    assert not direction.better(None, -5.0) and not direction.better(None, None)
    assert direction.better(0.0, float("nan")) and not direction.better(float("nan"), 0.0)


def test_gain_is_how_much_better_new_is_than_old() -> None:
    assert MAX.gain(3.0, 1.0) == 2.0 and MAX.gain(1.0, 3.0) == -2.0
    assert MIN.gain(1.0, 3.0) == 2.0 and MIN.gain(3.0, 1.0) == -2.0


def test_prompts_say_where_a_better_score_lies() -> None:
    assert (MAX.goal, MAX.phrase) == ("higher", "higher is better")
    assert (MIN.goal, MIN.phrase) == ("lower", "lower is better")


def test_problem_toml_values_read_as_directions_and_others_are_refused() -> None:
    assert Direction("minimize") is MIN and MAX == "maximize"
    with pytest.raises(ValueError, match="'max'"):
        Direction("max")
