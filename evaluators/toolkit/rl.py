"""Gymnasium rollouts for problems whose programs are policies, ES rules, rewards or losses.

Episodes run side by side in a SyncVectorEnv (faster than AsyncVectorEnv on a few cores), one
episode per seed, so a fixed seed list gives the same returns every time. Budgets: a cap on env
steps and on wall time per call; an episode cut by a budget is counted with the return it had.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

Policy = Callable[[np.ndarray], Any]  # a batch of observations (n, *obs) -> n actions
SEED_VAR = "EVOFORGE_EVAL_SEED"


class RolloutError(ValueError):
    """A policy returned unusable actions; the message names the episode row and the fix."""


class Strategy(Protocol):
    """An ask/tell optimiser that maximises: ask() -> (pop, dim) array, tell(x, fitness)."""

    def ask(self) -> np.ndarray: ...

    def tell(self, solutions: np.ndarray, fitness: np.ndarray) -> None: ...


@dataclass
class Trajectory:
    """Time-major record of a batch of episodes: row t, column i is step t of episode i."""

    observations: np.ndarray  # (T, n, *obs_shape)
    actions: np.ndarray       # (T, n, *action_shape)
    rewards: np.ndarray       # (T, n)
    mask: np.ndarray          # (T, n) True where episode i was still running at step t


@dataclass
class Returns:
    """Undiscounted returns of one batch of episodes (one per seed) and what they cost."""

    returns: np.ndarray
    lengths: np.ndarray
    steps: int
    wall_s: float
    complete: bool  # False when a step or time budget cut episodes short
    trajectory: Trajectory | None = None  # with run(record=True)

    @property
    def mean(self) -> float:
        """Returns the mean episode return."""
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        """Returns the standard deviation of the episode returns."""
        return float(np.std(self.returns))


def seed_offset() -> int:
    """Returns the evaluation seed offset from $EVOFORGE_EVAL_SEED (0 when unset)."""
    raw = os.environ.get(SEED_VAR, "0").strip() or "0"
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{SEED_VAR}={raw!r} is not an integer; set it to a whole number "
                         "such as 0 or 3") from None


def seeds(count: int, base: int = 0, stride: int = 100_003) -> list[int]:
    """Returns count fixed episode seeds, shifted to a fresh set for each $EVOFORGE_EVAL_SEED."""
    start = base + stride * seed_offset()
    return [start + k for k in range(count)]


class VecRollout:
    """Runs batches of episodes of one env id; vector envs are built once per batch size."""

    def __init__(self, env_id: str, *, max_episode_steps: int | None = None,
                 **env_kwargs: Any) -> None:
        self.env_id = env_id
        self.max_episode_steps = max_episode_steps
        self.env_kwargs = env_kwargs
        self._envs: dict[int, gym.vector.SyncVectorEnv] = {}
        probe = self._make()
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        self.horizon: int | None = probe.spec.max_episode_steps if probe.spec else None
        probe.close()

    def _make(self) -> gym.Env:
        return gym.make(self.env_id, max_episode_steps=self.max_episode_steps, **self.env_kwargs)

    def _vector(self, n: int) -> gym.vector.SyncVectorEnv:
        if n not in self._envs:
            self._envs[n] = gym.vector.SyncVectorEnv(
                [self._make for _ in range(n)],
                autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        return self._envs[n]

    def run(self, policy: Policy, episode_seeds: Sequence[int], *, step_budget: int | None = None,
            time_limit_s: float | None = None, record: bool = False) -> Returns:
        """Returns the returns of one episode per seed, run side by side under policy."""
        n = len(episode_seeds)
        if n == 0:
            raise ValueError("run() needs at least one episode seed")
        env = self._vector(n)
        obs, _ = env.reset(seed=[int(s) for s in episode_seeds])
        total, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
        active = np.ones(n, dtype=bool)
        steps, started = 0, time.monotonic()
        deadline = math.inf if time_limit_s is None else started + time_limit_s
        log: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        while active.any():
            if (step_budget is not None and steps >= step_budget) or time.monotonic() > deadline:
                break
            actions = self._actions(policy(obs), n)
            if record:
                log.append((obs.copy(), actions.copy(), np.zeros(n), active.copy()))
            obs, reward, terminated, truncated, _ = env.step(actions)
            if record:
                log[-1][2][:] = np.where(active, reward, 0.0)
            total += np.where(active, reward, 0.0)
            lengths += active
            steps += int(active.sum())
            active &= ~(terminated | truncated)
        trajectory = (Trajectory(*(np.stack(part) for part in zip(*log, strict=True)))
                      if log else None)
        return Returns(total, lengths, steps, time.monotonic() - started, not active.any(),
                       trajectory)

    def _actions(self, raw: Any, n: int) -> np.ndarray:
        """Returns the policy's actions checked against the action space, or raises RolloutError."""
        space = self.action_space
        try:
            actions = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise RolloutError(f"the policy returned {type(raw).__name__}, "
                               f"not numbers ({exc})") from exc
        if isinstance(space, gym.spaces.Discrete):
            actions = actions.reshape(-1) if actions.size == n else actions
            if actions.shape != (n,):
                raise RolloutError(f"the policy returned shape {actions.shape}; a batch of {n} "
                                   f"observations needs {n} integer actions")
            if not np.all(np.isfinite(actions)) or np.any(actions != np.round(actions)):
                raise RolloutError(f"{self.env_id} needs integer actions in 0..{space.n - 1}; "
                                   f"the policy returned {actions[:4].tolist()}")
            if actions.min() < 0 or actions.max() >= space.n:
                raise RolloutError(f"{self.env_id} actions must lie in 0..{space.n - 1}; the "
                                   f"policy returned {actions.min():g}..{actions.max():g}")
            return actions.astype(np.int64)
        shape = (n, *space.shape)
        if actions.size != math.prod(shape):
            raise RolloutError(f"the policy returned shape {actions.shape}; {self.env_id} needs "
                               f"{shape} (one action of shape {space.shape} per observation)")
        actions = actions.reshape(shape)
        if not np.all(np.isfinite(actions)):
            raise RolloutError(f"the policy returned NaN or infinite actions for {self.env_id}")
        return np.clip(actions, space.low, space.high).astype(space.dtype)

    def close(self) -> None:
        """Closes every vector env built so far."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def per_observation(act: Callable[[np.ndarray], Any]) -> Policy:
    """Returns a batch policy that calls act(observation) once per row (for evolved programs)."""
    def batch(obs: np.ndarray) -> list[Any]:
        return [act(row.copy()) for row in obs]
    return batch


class LinearPolicy:
    """action = W obs + b: argmax for discrete actions, tanh scaled to the box for continuous."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.obs_dim = int(math.prod(observation_space.shape))
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.act_dim = int(action_space.n) if self.discrete else int(math.prod(action_space.shape))
        if not self.discrete:
            self.low, self.high = action_space.low.reshape(-1), action_space.high.reshape(-1)
        self.n_params = (self.obs_dim + 1) * self.act_dim

    def batch(self, params: np.ndarray) -> Policy:
        """Returns the policy whose row i acts with parameter vector params[i] (or one for all)."""
        p = np.atleast_2d(np.asarray(params, dtype=np.float64))
        if p.shape[1] != self.n_params:
            raise ValueError(f"a linear policy here has {self.n_params} parameters, "
                             f"got {p.shape[1]}")
        w = p[:, : self.obs_dim * self.act_dim].reshape(-1, self.act_dim, self.obs_dim)
        b = p[:, self.obs_dim * self.act_dim:]

        def act(obs: np.ndarray) -> np.ndarray:
            out = np.einsum("nao,no->na", w, obs.reshape(len(obs), -1)) + b
            if self.discrete:
                return out.argmax(axis=1)
            return self.low + (np.tanh(out) + 1.0) * 0.5 * (self.high - self.low)
        return act


@dataclass
class Training:
    """What training a linear policy under an episode budget gave."""

    best_params: np.ndarray
    final_return: float  # mean return of the strategy's last proposal on held-out seeds
    curve: list[tuple[int, float]]  # (episodes used, mean return of that generation)
    episodes: int
    wall_s: float


def train_linear_policy(make_strategy: Callable[[int], Strategy], rollout: VecRollout, *,
                        episodes: int, test_seeds: Sequence[int], seed: int = 0,
                        time_limit_s: float | None = None) -> Training:
    """Returns the training of a linear policy by ask/tell under a budget of episodes.

    make_strategy(n_params) builds the optimiser; every candidate plays one episode with its own
    seed; the best candidate of the last generation is scored on test_seeds.
    """
    policy = LinearPolicy(rollout.observation_space, rollout.action_space)
    strategy = make_strategy(policy.n_params)
    used, curve, generation, started = 0, [], 0, time.monotonic()
    best, best_fit = np.zeros(policy.n_params), -math.inf
    while used < episodes:
        if time_limit_s is not None and time.monotonic() - started > time_limit_s:
            break
        asked = _population(strategy.ask(), policy.n_params)
        x = asked[: episodes - used]
        train_seeds = [seed * 1_000_003 + generation * 1009 + k for k in range(len(x))]
        fit = rollout.run(policy.batch(x), train_seeds).returns
        if len(x) == len(asked):  # a generation cut by the budget is not told
            strategy.tell(x, fit)
        used += len(x)
        generation += 1
        curve.append((used, float(fit.mean())))
        if fit.max() > best_fit:
            best, best_fit = x[int(fit.argmax())].copy(), float(fit.max())
    final = _final_params(strategy, best)
    score = rollout.run(policy.batch(final), list(test_seeds)).mean
    return Training(final, score, curve, used, time.monotonic() - started)


def _final_params(strategy: Strategy, best: np.ndarray) -> np.ndarray:
    """Returns the strategy's mean when it has a finite one of the right size, else best."""
    mean = getattr(strategy, "mean", None)
    try:
        arr = np.asarray(mean, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return best
    return arr if arr.shape == best.shape and np.all(np.isfinite(arr)) else best


def _population(x: Any, dim: int) -> np.ndarray:
    """Returns ask()'s answer as a finite (pop, dim) array, or raises ValueError saying why."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != dim or arr.shape[0] == 0:
        raise ValueError(f"ask() returned shape {arr.shape}; it must return (popsize, {dim})")
    if not np.all(np.isfinite(arr)):
        raise ValueError("ask() returned NaN or infinite parameters")
    return arr
