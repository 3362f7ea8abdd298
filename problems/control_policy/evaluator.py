"""Scores CartPole-v1 and Pendulum-v1 policies by their mean return over fixed episode seeds."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from evaluators.toolkit import rl

EPISODES = 10           # per task in evaluate(); seeds shift with $EVOFORGE_EVAL_SEED
STAGE1_EPISODES = 2     # per task in the cascade's cheap first stage
STAGE1_STEPS = 50       # episode length in stage 1
PENDULUM_STEP_COST = 8.0  # a per-step cost this high scores 0 on Pendulum; 0 cost scores 1
TASKS = {"cartpole": ("CartPole-v1", "cartpole_action"), "pendulum": ("Pendulum-v1",
                                                                       "pendulum_torque")}


class Result:
    """Metrics plus artifacts (the feedback text shown to the LLM)."""

    def __init__(self, metrics: dict[str, float], feedback: str) -> None:
        self.metrics = metrics
        self.artifacts = {"feedback": feedback}


def evaluate_stage1(program_path: str) -> Result:
    """Returns the score of short episodes: a cheap gate that rejects broken policies."""
    return _score(program_path, STAGE1_EPISODES, STAGE1_STEPS, base_seed=7_000)


def evaluate(program_path: str) -> Result:
    """Returns 0.5 * CartPole return / 500 + 0.5 * normalised Pendulum return, mean over seeds."""
    return _score(program_path, EPISODES, None, base_seed=0)


def normalised(task: str, mean_return: float, steps: int) -> float:
    """Returns a task's mean return mapped into [0, 1] (1 is the best possible)."""
    if task == "cartpole":
        return float(np.clip(mean_return / steps, 0.0, 1.0))
    return float(np.clip(1.0 + mean_return / (PENDULUM_STEP_COST * steps), 0.0, 1.0))


def _score(program_path: str, episodes: int, max_steps: int | None, base_seed: int) -> Result:
    try:
        module = _load(program_path)
    except Exception as exc:  # noqa: BLE001 - the candidate's own error is the reason it failed
        return _failed(f"the program does not import: {type(exc).__name__}: {exc}")
    metrics, lines, parts = {}, [], []
    for task, (env_id, name) in TASKS.items():
        act = getattr(module, name, None)
        if not callable(act):
            return _failed(f"the program defines no {name}(obs) function")
        rollout = rl.VecRollout(env_id, max_episode_steps=max_steps)
        steps = rollout.horizon or 1
        try:
            out = rollout.run(rl.per_observation(_guarded(act, name)),
                              rl.seeds(episodes, base_seed))
        except (rl.RolloutError, _PolicyError) as exc:
            return _failed(f"{name}: {exc}")
        finally:
            rollout.close()
        metrics[f"{task}_return"] = out.mean
        metrics[f"{task}_return_std"] = out.std
        parts.append(normalised(task, out.mean, steps))
        lines.append(f"{env_id}: mean return {out.mean:.1f} +- {out.std:.1f} over {episodes} "
                     f"episodes of up to {steps} steps")
    metrics["combined_score"] = float(np.mean(parts))
    metrics["validity"] = 1.0
    return Result(metrics, "; ".join(lines) + " (CartPole best 500, Pendulum best about -150)")


class _PolicyError(ValueError):
    """The candidate's policy raised; the message names the function and the error."""


def _guarded(act: Callable[[np.ndarray], Any], name: str) -> Callable[[np.ndarray], Any]:
    def call(obs: np.ndarray) -> Any:
        try:
            return act(obs)
        except Exception as exc:  # noqa: BLE001 - the candidate's own error is the reason
            raise _PolicyError(f"{name}({np.round(obs, 3).tolist()}) raised "
                               f"{type(exc).__name__}: {exc}") from None
    return call


def _load(program_path: str) -> Any:
    """Returns the candidate program imported as a module from its file."""
    spec = importlib.util.spec_from_file_location("candidate_program", program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {program_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _failed(reason: str) -> Result:
    """Returns the zero-score result of an unusable policy, the reason as feedback."""
    return Result({"combined_score": 0.0, "validity": 0.0}, f"invalid policy: {reason}")
