"""Gymnasium rollouts: vectorised, seeded, budgeted, checked actions; MuJoCo included."""

from __future__ import annotations

import numpy as np
import pytest

from evaluators.toolkit import rl


@pytest.fixture
def cartpole() -> rl.VecRollout:
    rollout = rl.VecRollout("CartPole-v1")
    yield rollout
    rollout.close()


def lean(obs: np.ndarray) -> np.ndarray:
    """Returns 1 (push right) where the pole leans right: a weak CartPole policy."""
    return (obs[:, 2] > 0).astype(int)


def test_fixed_seeds_give_the_same_returns_and_other_seeds_other_ones(cartpole) -> None:
    first = cartpole.run(lean, [0, 1, 2, 3])
    again = cartpole.run(lean, [0, 1, 2, 3])
    other = cartpole.run(lean, [10, 11, 12, 13])
    assert first.returns.tolist() == again.returns.tolist()
    assert first.returns.tolist() != other.returns.tolist()
    assert first.complete and first.steps == int(first.lengths.sum())
    assert first.returns.tolist() == first.lengths.astype(float).tolist()  # 1 per step alive
    assert first.mean == pytest.approx(np.mean(first.returns))
    assert first.std == pytest.approx(np.std(first.returns))


def test_each_episode_counts_only_its_own_first_episode(cartpole) -> None:
    together = cartpole.run(lean, [5, 6, 7])
    alone = [cartpole.run(lean, [s]).returns[0] for s in (5, 6, 7)]
    assert together.returns.tolist() == alone


def test_step_budget_cuts_episodes_and_says_so(cartpole) -> None:
    def balance(obs: np.ndarray) -> np.ndarray:
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(int)
    cut = cartpole.run(balance, [0, 1], step_budget=100)
    assert not cut.complete and cut.steps == 100 and cut.returns.sum() == 100


def test_time_limit_cuts_episodes(cartpole) -> None:
    def slow(obs: np.ndarray) -> np.ndarray:
        import time
        time.sleep(0.01)
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(int)
    cut = cartpole.run(slow, [0], time_limit_s=0.2)
    assert not cut.complete and 5 <= cut.steps < 100 and cut.wall_s < 1.0


def test_recorded_trajectory_matches_the_returns(cartpole) -> None:
    out = cartpole.run(lean, [0, 1, 2], record=True)
    traj = out.trajectory
    steps = int(out.lengths.max())
    assert traj.observations.shape == (steps, 3, 4) and traj.actions.shape == (steps, 3)
    assert traj.mask.sum(axis=0).tolist() == out.lengths.tolist()
    np.testing.assert_allclose(traj.rewards.sum(axis=0), out.returns)
    np.testing.assert_array_equal(traj.actions, lean(traj.observations.reshape(-1, 4))
                                  .reshape(steps, 3))


@pytest.mark.parametrize(("policy", "message"), [
    (lambda obs: np.zeros(len(obs) + 1, dtype=int), "needs 2 integer actions"),
    (lambda obs: np.full(len(obs), 2), "must lie in 0..1"),
    (lambda obs: np.full(len(obs), 0.5), "integer actions"),
    (lambda obs: ["left"] * len(obs), "not numbers"),
])
def test_unusable_discrete_actions_are_refused_with_the_reason(cartpole, policy,
                                                               message: str) -> None:
    with pytest.raises(rl.RolloutError, match=message):
        cartpole.run(policy, [0, 1])


def test_continuous_actions_are_checked_and_clipped_into_the_box() -> None:
    pendulum = rl.VecRollout("Pendulum-v1", max_episode_steps=20)
    big = pendulum.run(lambda obs: np.full((len(obs), 1), 50.0), [0])
    edge = pendulum.run(lambda obs: np.full((len(obs), 1), 2.0), [0])
    assert big.returns.tolist() == edge.returns.tolist() and big.lengths[0] == 20
    with pytest.raises(rl.RolloutError, match="NaN"):
        pendulum.run(lambda obs: np.full(len(obs), np.nan), [0])
    with pytest.raises(rl.RolloutError, match=r"needs \(2, 1\)"):
        pendulum.run(lambda obs: np.zeros((len(obs), 3)), [0, 1])
    pendulum.close()


def test_per_observation_wraps_a_single_observation_policy(cartpole) -> None:
    seen = []

    def act(obs: np.ndarray) -> int:
        seen.append(obs.shape)
        return int(obs[2] > 0)
    assert cartpole.run(rl.per_observation(act), [0, 1]).returns.tolist() == \
        cartpole.run(lean, [0, 1]).returns.tolist()
    assert set(seen) == {(4,)}


def test_linear_policy_stays_inside_the_action_box_on_mujoco_halfcheetah() -> None:
    cheetah = rl.VecRollout("HalfCheetah-v5", max_episode_steps=50)
    policy = rl.LinearPolicy(cheetah.observation_space, cheetah.action_space)
    assert policy.n_params == (17 + 1) * 6 and not policy.discrete
    params = np.random.default_rng(0).normal(0, 5.0, (3, policy.n_params))
    actions = policy.batch(params)(np.random.default_rng(1).normal(size=(3, 17)))
    assert actions.shape == (3, 6) and np.all(np.abs(actions) <= 1.0)
    out = cheetah.run(policy.batch(params), [0, 1, 2])
    assert out.complete and out.lengths.tolist() == [50, 50, 50]
    assert np.all(np.isfinite(out.returns)) and len(set(out.returns.tolist())) == 3
    with pytest.raises(ValueError, match="108 parameters"):
        policy.batch(np.zeros(5))
    cheetah.close()


def test_seed_sets_shift_with_the_evaluation_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rl.SEED_VAR, raising=False)
    base = rl.seeds(3, base=10)
    assert base == [10, 11, 12]
    monkeypatch.setenv(rl.SEED_VAR, "2")
    shifted = rl.seeds(3, base=10)
    assert not set(base) & set(shifted) and rl.seed_offset() == 2
    monkeypatch.setenv(rl.SEED_VAR, "two")
    with pytest.raises(ValueError, match="EVOFORGE_EVAL_SEED='two' is not an integer"):
        rl.seeds(3)


def test_training_stops_at_the_episode_budget_and_rejects_bad_asks(cartpole) -> None:
    class Fixed:
        mean = np.zeros(10)

        def __init__(self, pop: int, width: int = 10) -> None:
            self.pop, self.width, self.told = pop, width, 0

        def ask(self) -> np.ndarray:
            return np.zeros((self.pop, self.width))

        def tell(self, x: np.ndarray, fitness: np.ndarray) -> None:
            self.told += 1
    strategy = Fixed(6)
    trained = rl.train_linear_policy(lambda d: strategy, cartpole, episodes=20, test_seeds=[0])
    assert trained.episodes == 20 and strategy.told == 3  # the cut 4th generation is not told
    with pytest.raises(ValueError, match=r"must return \(popsize, 10\)"):
        rl.train_linear_policy(lambda d: Fixed(4, width=3), cartpole, episodes=8, test_seeds=[0])
