"""Scores an evolved policy-gradient loss by the return a small learner reaches with it.

The learner is a linear softmax policy on CartPole-v1 trained by gradient ascent on
sum_t w_t log pi(a_t | s_t), where the candidate's step_weights() gives w. Fixed budget:
UPDATES batches of BATCH episodes, learning rate LR; several learner seeds; the trained
policy then plays greedy held-out episodes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from evaluators.toolkit import rl

ENV_ID = "CartPole-v1"
BATCH = 8          # episodes per update
UPDATES = 25       # updates per learner: 200 training episodes
LR = 0.05
GAMMA = 0.99
LEARNERS = 4       # independent learner seeds; the score is their mean
TEST_EPISODES = 5  # greedy held-out episodes per learner
MAX_RETURN = 500.0


class Result:
    """Metrics plus artifacts (the feedback text shown to the LLM)."""

    def __init__(self, metrics: dict[str, float], feedback: str) -> None:
        self.metrics = metrics
        self.artifacts = {"feedback": feedback}


class LossError(ValueError):
    """step_weights() failed or returned something unusable; the message says what."""


def evaluate_stage1(program_path: str) -> Result:
    """Returns the score of one learner after 5 updates: a cheap gate for broken losses."""
    return _score(program_path, learners=1, updates=5)


def evaluate(program_path: str) -> Result:
    """Returns the learners' mean greedy return / 500 after the fixed training budget."""
    return _score(program_path, learners=LEARNERS, updates=UPDATES)


def train(weights_fn: Callable[..., Any], rollout: rl.VecRollout, seed: int,
          updates: int) -> np.ndarray:
    """Returns the weights (actions x (obs + 1)) of a softmax policy trained with weights_fn."""
    obs_dim = rollout.observation_space.shape[0]
    n_actions = int(rollout.action_space.n)
    w = np.zeros((n_actions, obs_dim + 1))
    rng = np.random.default_rng(seed)
    for update in range(updates):
        def sample(obs: np.ndarray, w: np.ndarray = w) -> np.ndarray:
            p = _probs(w, _features(obs))
            return (rng.random((len(obs), 1)) > np.cumsum(p, axis=1)).sum(axis=1)
        episode_seeds = [seed * 100_003 + update * BATCH + k for k in range(BATCH)]
        traj = rollout.run(sample, episode_seeds, record=True).trajectory
        x = _features(traj.observations)
        p = _probs(w, x)
        actions = traj.actions.astype(np.int64)
        mask = traj.mask.astype(np.float64)
        log_probs = np.log(np.take_along_axis(p, actions[..., None], axis=-1)[..., 0] + 1e-12)
        weights = _checked(weights_fn, traj.rewards.copy(), log_probs * mask, mask.copy())
        score = np.eye(n_actions)[actions] - p  # d log pi(a|s) / d logits
        grad = np.einsum("tn,tna,tnf->af", weights * mask, score, x) / BATCH
        w = w + LR * grad
        if not np.all(np.isfinite(w)):
            raise LossError(f"the policy weights became NaN or infinite at update {update + 1}; "
                            "keep the step weights finite and moderate (e.g. normalise them)")
    return w


def _score(program_path: str, learners: int, updates: int) -> Result:
    rollout = rl.VecRollout(ENV_ID)
    offset, returns = rl.seed_offset(), []
    try:
        weights_fn = _loss(program_path)
        for k in range(learners):
            w = train(weights_fn, rollout, seed=offset * 1000 + k, updates=updates)
            test = rollout.run(lambda obs, w=w: (_features(obs) @ w.T).argmax(axis=1),
                               rl.seeds(TEST_EPISODES, base=70_000 + 100 * k))
            returns.append(test.mean)
    except LossError as exc:
        return _failed(str(exc))
    finally:
        rollout.close()
    mean, std = float(np.mean(returns)), float(np.std(returns))
    return Result({"combined_score": mean / MAX_RETURN, "mean_return": mean, "return_std": std,
                   "validity": 1.0},
                  f"after {updates * BATCH} training episodes each, {learners} learner(s) reach a "
                  f"greedy return of {mean:.1f} +- {std:.1f} on {ENV_ID} (500 is the maximum); "
                  f"per learner: {[round(r, 1) for r in returns]}")


def _features(obs: np.ndarray) -> np.ndarray:
    return np.concatenate([obs, np.ones((*obs.shape[:-1], 1))], axis=-1)


def _probs(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    z = x @ w.T
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _checked(weights_fn: Callable[..., Any], rewards: np.ndarray, log_probs: np.ndarray,
             mask: np.ndarray) -> np.ndarray:
    """Returns step_weights()'s answer as a finite array shaped like rewards; else LossError."""
    try:
        raw = weights_fn(rewards, log_probs, mask, GAMMA)
    except Exception as exc:  # noqa: BLE001 - the candidate's own error is the reason
        raise LossError(f"step_weights() raised {type(exc).__name__}: {exc}") from None
    try:
        weights = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LossError(f"step_weights() returned {type(raw).__name__}, not numbers ({exc})") \
            from None
    if weights.shape != rewards.shape:
        raise LossError(f"step_weights() returned shape {weights.shape}; it must return one weight "
                        f"per step, shaped like rewards {rewards.shape}")
    if not np.all(np.isfinite(weights)):
        raise LossError("step_weights() returned NaN or infinite weights")
    return weights


def _loss(program_path: str) -> Callable[..., Any]:
    try:
        spec = importlib.util.spec_from_file_location("candidate_program", program_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure at import is the candidate's
        raise LossError(f"the program does not import: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, "step_weights", None)
    if not callable(fn):
        raise LossError("the program defines no step_weights(rewards, log_probs, mask, gamma)")
    return fn


def _failed(reason: str) -> Result:
    """Returns the zero-score result of an unusable loss, the reason as feedback."""
    return Result({"combined_score": 0.0, "validity": 0.0}, f"invalid loss: {reason}")
