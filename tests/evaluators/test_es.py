"""Evolution strategies behind ask/tell: OpenAI-ES (numpy) and CMA-ES (pycma), on real problems."""

from __future__ import annotations

import numpy as np
import pytest

from evaluators.toolkit import es, rl


def test_centred_ranks_span_minus_half_to_half_in_fitness_order() -> None:
    ranks = es.centred_ranks(np.array([3.0, -10.0, 100.0, 0.5]))
    assert ranks.tolist() == pytest.approx([1 / 6, -0.5, 0.5, -1 / 6])
    assert es.centred_ranks(np.array([7.0])).tolist() == [0.0]


def test_openai_es_asks_antithetic_pairs_around_the_mean() -> None:
    strategy = es.OpenAIES(np.array([1.0, -2.0, 0.5]), sigma=0.3, popsize=6, seed=4)
    x = strategy.ask()
    assert x.shape == (6, 3)
    np.testing.assert_allclose(x[:3] + x[3:], np.tile(2 * strategy.mean, (3, 1)))


def test_openai_es_moves_the_mean_towards_higher_fitness() -> None:
    strategy = es.OpenAIES(np.zeros(4), sigma=0.1, popsize=8, lr=0.1, seed=0)
    for _ in range(30):
        x = strategy.ask()
        strategy.tell(x, x @ np.array([1.0, -1.0, 2.0, 0.0]))  # a linear slope
    assert strategy.mean[0] > 1 and strategy.mean[1] < -1 and strategy.mean[2] > 1
    assert abs(strategy.mean[3]) < 1


@pytest.mark.parametrize(("name", "options", "tolerance"), [
    ("openai_es", {"sigma": 0.1, "popsize": 20, "lr": 0.1}, 0.05),  # f(x0) = 45
    ("cma_es", {"sigma": 1.0}, 1e-8),
])
def test_strategies_minimise_sphere_and_rosenbrock(name: str, options: dict,
                                                   tolerance: float) -> None:
    sphere = es.minimise(es.make_strategy(name, np.full(5, 3.0), seed=1, **options),
                         es.sphere, 3000)
    assert sphere.best < tolerance and sphere.evaluations >= 3000
    assert [v for _, v in sphere.curve] == sorted((v for _, v in sphere.curve), reverse=True)
    if name == "cma_es":
        rosen = es.minimise(es.make_strategy(name, np.zeros(5), seed=1, sigma=0.5), es.rosenbrock,
                            6000)
        assert rosen.best < 1e-6


@pytest.mark.parametrize(("name", "make", "episodes"), [
    ("openai_es", lambda d: es.OpenAIES(np.zeros(d), sigma=0.1, popsize=16, lr=0.1, seed=0), 640),
    ("cma_es", lambda d: es.CMAES(np.zeros(d), sigma=0.5, popsize=16, seed=0), 480),
])
def test_strategies_solve_cartpole_with_a_linear_policy_in_a_small_budget(
        name: str, make, episodes: int) -> None:
    rollout = rl.VecRollout("CartPole-v1")
    trained = rl.train_linear_policy(make, rollout, episodes=episodes, seed=0,
                                     test_seeds=range(1000, 1010))
    rollout.close()
    assert trained.final_return == 500.0, f"{name}: {trained.final_return}"
    assert trained.episodes <= episodes
    assert trained.curve[-1][0] == trained.episodes and trained.curve[0][1] < 500.0


def test_cma_es_is_repeatable_for_a_seed_and_differs_across_seeds() -> None:
    def run(seed: int) -> float:
        return es.minimise(es.CMAES(np.full(4, 2.0), sigma=1.0, seed=seed), es.rastrigin, 400).best
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_bad_strategy_arguments_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"unknown strategy 'adam'.*cma_es"):
        es.make_strategy("adam", np.zeros(2))
    with pytest.raises(ValueError, match="even"):
        es.OpenAIES(np.zeros(2), popsize=7)
    with pytest.raises(RuntimeError, match="ask\\(\\) first"):
        es.OpenAIES(np.zeros(2), popsize=4).tell(np.zeros((4, 2)), np.zeros(4))


def test_functions_have_their_minimum_where_documented() -> None:
    assert es.sphere(np.zeros(3))[0] == 0.0 and es.rastrigin(np.zeros(3))[0] == 0.0
    assert es.rosenbrock(np.ones(3))[0] == 0.0 and es.ellipsoid(np.zeros(3))[0] == 0.0
    assert np.all(es.rastrigin(np.full((2, 3), 0.5)) > 0)
    assert es.ellipsoid(np.array([0.0, 0.0, 1.0]))[0] == pytest.approx(1e6)
