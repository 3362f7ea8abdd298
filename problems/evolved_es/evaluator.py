"""Scores an ask/tell evolution strategy: linear policies on three gym tasks, four functions.

Every task has a fixed budget (episodes or function evaluations) and maps its result into
[0, 1]; combined_score = 0.5 * mean over the RL tasks + 0.5 * mean over the functions.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.toolkit import es, rl

POPSIZE = 16


@dataclass(frozen=True)
class PolicyTask:
    """Train a linear policy on env_id in `episodes` episodes; score: clip((R - lo) / (hi - lo))."""

    env_id: str
    episodes: int
    sigma: float
    lo: float
    hi: float
    horizon: int | None = None


@dataclass(frozen=True)
class FunctionTask:
    """Minimise a shifted function within `evaluations` evaluations, from `distance` away.

    The optimum is moved to a random point and x0 put at `distance` from it in a random
    direction (both drawn from the task and the seed), so no fixed guess can find it.
    """

    name: str
    dim: int
    evaluations: int
    distance: float
    sigma: float


POLICY_TASKS = (PolicyTask("CartPole-v1", 320, 0.1, 0.0, 500.0),
                PolicyTask("Pendulum-v1", 320, 0.2, -1600.0, 0.0),
                PolicyTask("HalfCheetah-v5", 160, 0.1, -100.0, 600.0, horizon=200))
FUNCTION_TASKS = (FunctionTask("sphere", 10, 1600, 9.5, 1.0),
                  FunctionTask("ellipsoid", 10, 1600, 9.5, 1.0),
                  FunctionTask("rosenbrock", 10, 1600, 3.2, 0.5),
                  FunctionTask("rastrigin", 10, 1600, 9.5, 1.0))
OPTIMA = {"sphere": 0.0, "ellipsoid": 0.0, "rosenbrock": 1.0, "rastrigin": 0.0}  # per coordinate
TARGET = 1e-8       # a function value this small scores 1
TEST_EPISODES = 5   # held-out episodes that score the trained policy
FORBIDDEN = {"cma", "evaluators", "evosax", "nevergrad", "pycma", "cmaes"}  # library optimisers


class Result:
    """Metrics plus artifacts (the feedback text shown to the LLM)."""

    def __init__(self, metrics: dict[str, float], feedback: str) -> None:
        self.metrics = metrics
        self.artifacts = {"feedback": feedback}


class StrategyError(ValueError):
    """The candidate strategy failed; the message names the task and the error."""


def evaluate_stage1(program_path: str) -> Result:
    """Returns the sphere score in 5 dimensions within 320 evaluations: a cheap gate."""
    try:
        cls = _strategy_class(program_path)
        score, best = function_score(cls, FunctionTask("sphere", 5, 320, 6.7, 1.0),
                                     seed=rl.seed_offset())
    except StrategyError as exc:
        return _failed(str(exc))
    return Result({"combined_score": score, "validity": 1.0},
                  f"sphere (5-D, 320 evaluations): best f = {best:.3g}")


def evaluate(program_path: str) -> Result:
    """Returns the mean normalised result over the policy tasks and the functions."""
    offset = rl.seed_offset()
    try:
        cls = _strategy_class(program_path)
        metrics, lines = {}, []
        rl_scores = []
        for task in POLICY_TASKS:
            score, ret = policy_score(cls, task, seed=offset)
            rl_scores.append(score)
            metrics[f"{_short(task.env_id)}_return"] = ret
            lines.append(f"{task.env_id}: return {ret:.1f} after {task.episodes} episodes")
        fn_scores = []
        for task in FUNCTION_TASKS:
            score, best = function_score(cls, task, seed=offset)
            fn_scores.append(score)
            metrics[f"{task.name}_log10"] = math.log10(max(best, 1e-300))
            lines.append(f"{task.name} ({task.dim}-D): best f = {best:.3g} after "
                         f"{task.evaluations} evaluations")
    except StrategyError as exc:
        return _failed(str(exc))
    metrics["rl_score"] = float(np.mean(rl_scores))
    metrics["function_score"] = float(np.mean(fn_scores))
    metrics["combined_score"] = 0.5 * metrics["rl_score"] + 0.5 * metrics["function_score"]
    metrics["validity"] = 1.0
    return Result(metrics, "; ".join(lines))


def policy_score(cls: Any, task: PolicyTask, seed: int) -> tuple[float, float]:
    """Returns (score in [0, 1], held-out mean return) of a linear policy the strategy trained."""
    rollout = rl.VecRollout(task.env_id, max_episode_steps=task.horizon)
    try:
        training = rl.train_linear_policy(
            lambda dim: _build(cls, np.zeros(dim), task.sigma, seed),
            rollout, episodes=task.episodes, seed=seed,
            test_seeds=rl.seeds(TEST_EPISODES, base=50_000))
    except StrategyError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing ask/tell is the candidate's error
        raise StrategyError(f"{task.env_id}: {type(exc).__name__}: {exc}") from None
    finally:
        rollout.close()
    ret = training.final_return
    return float(np.clip((ret - task.lo) / (task.hi - task.lo), 0.0, 1.0)), ret


def function_score(cls: Any, task: FunctionTask, seed: int) -> tuple[float, float]:
    """Returns (score in [0, 1], best value): orders of magnitude gained from f(x0) to 1e-8."""
    f, x0 = shifted(task, seed)
    strategy = _build(cls, x0, task.sigma, seed)
    try:
        best = es.minimise(strategy, f, task.evaluations).best
    except Exception as exc:  # noqa: BLE001 - a failing ask/tell is the candidate's error
        raise StrategyError(f"{task.name}: {type(exc).__name__}: {exc}") from None
    mean = np.asarray(getattr(strategy, "mean", x0), dtype=np.float64).reshape(-1)
    if mean.shape == x0.shape and np.all(np.isfinite(mean)):
        best = min(best, float(f(mean)[0]))
    start = float(f(x0)[0])
    gained = math.log10(start / max(best, TARGET))
    return float(np.clip(gained / math.log10(start / TARGET), 0.0, 1.0)), best


def shifted(task: FunctionTask, seed: int) -> tuple[Any, np.ndarray]:
    """Returns the task's function with its optimum moved to a random point, and the start x0."""
    rng = np.random.default_rng([zlib.crc32(task.name.encode()), task.dim, seed])
    optimum = rng.uniform(-2.0, 2.0, task.dim)
    direction = rng.standard_normal(task.dim)
    x0 = optimum + task.distance * direction / np.linalg.norm(direction)
    base, at = es.FUNCTIONS[task.name], OPTIMA[task.name]

    def f(x: np.ndarray) -> np.ndarray:
        return base(np.atleast_2d(x) - optimum + at)
    return f, x0


def _build(cls: Any, x0: np.ndarray, sigma: float, seed: int) -> Any:
    try:
        return cls(x0.copy(), sigma, POPSIZE, seed)
    except Exception as exc:  # noqa: BLE001 - a failing constructor is the candidate's error
        raise StrategyError(f"Strategy(x0, sigma={sigma}, popsize={POPSIZE}, seed={seed}) raised "
                            f"{type(exc).__name__}: {exc}") from None


def _strategy_class(program_path: str) -> Any:
    borrowed = _borrowed_imports(program_path)
    if borrowed:
        raise StrategyError(f"the program imports {', '.join(borrowed)}; write the update rule "
                            "yourself with numpy instead of calling a library optimiser")
    try:
        spec = importlib.util.spec_from_file_location("candidate_program", program_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure at import is the candidate's
        raise StrategyError(f"the program does not import: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, "Strategy", None)
    if not callable(cls):
        raise StrategyError("the program defines no Strategy class with ask() and tell()")
    return cls


def _borrowed_imports(program_path: str) -> list[str]:
    """Returns the ready-made optimiser packages the program imports (none is allowed)."""
    try:
        tree = ast.parse(Path(program_path).read_text())
    except (SyntaxError, ValueError, OSError):
        return []  # the import below reports it
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    return sorted({n for n in names if n.split(".")[0] in FORBIDDEN})


def _short(env_id: str) -> str:
    return env_id.split("-", 1)[0].lower()


def _failed(reason: str) -> Result:
    """Returns the zero-score result of an unusable strategy, the reason as feedback."""
    return Result({"combined_score": 0.0, "validity": 0.0}, f"invalid strategy: {reason}")
