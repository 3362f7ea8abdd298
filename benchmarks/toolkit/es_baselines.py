"""OpenAI-ES vs CMA-ES training linear policies, and the evolved-ES problem's program vs both.

Part 1: return vs episodes and wall time on CartPole-v1 (500-step episodes) and HalfCheetah-v5
(200-step episodes), several seeds, each checkpoint scored on held-out episodes.
Part 2: problems/evolved_es scored with its initial program, OpenAI-ES and CMA-ES as the
Strategy (the same evaluator code, budgets and seeds).

    nice -n 10 .venv/bin/python -m benchmarks.toolkit.es_baselines [--seeds 3] [--part 1|2|both]

Prints tables; writes benchmarks/out/es_baselines_part<part>.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from typing import Any

import numpy as np

from benchmarks.harness.paths import PROBLEMS
from benchmarks.harness.store import out_file, write_json
from evaluators.toolkit import es, rl

PROBLEM = PROBLEMS / "evolved_es"
TASKS = {"CartPole-v1": {"horizon": None, "checkpoints": (160, 320, 640), "sigma": 0.1},
         "HalfCheetah-v5": {"horizon": 200, "checkpoints": (160, 480, 960), "sigma": 0.1}}


def baselines(popsize: int = 16) -> dict[str, Any]:
    """Returns the baseline constructors with the evolved-ES Strategy signature."""
    return {
        "openai_es": lambda x0, sigma, pop, seed: es.OpenAIES(x0, sigma=sigma, popsize=pop,
                                                               lr=0.05, seed=seed),
        "cma_es": lambda x0, sigma, pop, seed: es.CMAES(x0, sigma=sigma, popsize=pop, seed=seed),
    }


def curve(make: Any, env_id: str, seed: int, horizon: int | None, checkpoints: tuple[int, ...],
          sigma: float, popsize: int = 16) -> list[dict[str, float]]:
    """Returns held-out return and wall time at each episode checkpoint of one training run."""
    rollout = rl.VecRollout(env_id, max_episode_steps=horizon)
    policy = rl.LinearPolicy(rollout.observation_space, rollout.action_space)
    strategy = make(np.zeros(policy.n_params), sigma, popsize, seed)
    rows, used, generation, wall = [], 0, 0, 0.0
    for target in checkpoints:
        while used < target:
            started = time.perf_counter()
            x = strategy.ask()
            fit = rollout.run(policy.batch(x), [seed * 1_000_003 + generation * 1009 + k
                                                for k in range(len(x))]).returns
            strategy.tell(x, fit)
            wall += time.perf_counter() - started
            used += len(x)
            generation += 1
        test = rollout.run(policy.batch(strategy.mean), list(range(90_000, 90_010)))
        rows.append({"episodes": used, "return": test.mean, "wall_s": wall})
    rollout.close()
    return rows


def part1(seeds: int) -> list[dict[str, Any]]:
    """Returns one row per (task, strategy, checkpoint): mean and std over seeds."""
    table = []
    for env_id, cfg in TASKS.items():
        for name, make in baselines().items():
            runs = [curve(make, env_id, s, cfg["horizon"], cfg["checkpoints"], cfg["sigma"])
                    for s in range(seeds)]
            for k, point in enumerate(runs[0]):
                returns = [r[k]["return"] for r in runs]
                table.append({"env": env_id, "strategy": name, "episodes": point["episodes"],
                              "return_mean": float(np.mean(returns)),
                              "return_std": float(np.std(returns)),
                              "wall_s": float(np.mean([r[k]["wall_s"] for r in runs]))})
                print(f"{env_id:15} {name:10} {point['episodes']:6d} "
                      f"{table[-1]['return_mean']:9.1f} ± {table[-1]['return_std']:7.1f} "
                      f"{table[-1]['wall_s']:7.2f}", flush=True)
    return table


def part2() -> list[dict[str, Any]]:
    """Returns the evolved-ES problem's metrics for its initial program and both baselines."""
    spec = importlib.util.spec_from_file_location("evolved_es_evaluator", PROBLEM / "evaluator.py")
    evaluator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = evaluator  # its dataclasses look their module up
    spec.loader.exec_module(evaluator)
    initial = importlib.util.spec_from_file_location("evolved_es_initial",
                                                     PROBLEM / "initial_program.py")
    program = importlib.util.module_from_spec(initial)
    initial.loader.exec_module(program)
    rows = []
    for name, cls in {"initial_program": program.Strategy, **baselines()}.items():
        started = time.perf_counter()
        metrics = score_with(evaluator, cls)
        metrics["wall_s"] = time.perf_counter() - started
        rows.append({"strategy": name, **metrics})
        print(f"{name:16} combined {metrics['combined_score']:.3f}  rl {metrics['rl_score']:.3f}  "
              f"functions {metrics['function_score']:.3f}  "
              f"cartpole {metrics['cartpole_return']:7.1f}"
              f"  pendulum {metrics['pendulum_return']:8.1f}  halfcheetah "
              f"{metrics['halfcheetah_return']:7.1f}  {metrics['wall_s']:5.1f} s", flush=True)
    return rows


def score_with(evaluator: Any, cls: Any) -> dict[str, float]:
    """Returns the evolved-ES evaluator's metrics for a Strategy class given directly."""
    original = evaluator._strategy_class
    evaluator._strategy_class = lambda _path: cls
    try:
        return dict(evaluator.evaluate("<given>").metrics)
    finally:
        evaluator._strategy_class = original


def main() -> None:
    """Runs both parts, prints the tables and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per strategy")
    parser.add_argument("--part", choices=("1", "2", "both"), default="both",
                        help="1: training curves, 2: the evolved-ES problem's scores")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if args.part in ("1", "both"):
        print(f"{'env':15} {'strategy':10} {'episodes':>6} {'return':>9}   "
              f"{'std':>7} {'wall s':>7}")
        result["curves"] = part1(args.seeds)
    if args.part in ("2", "both"):
        print()
        result["evolved_es_problem"] = part2()
    write_json(out_file(f"es_baselines_part{args.part}.json"), result)


if __name__ == "__main__":
    main()
