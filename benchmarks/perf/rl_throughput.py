"""Environment steps per second inside the evaluation sandbox vs outside it, same code and command.

The measuring code is one evaluator file: outside, this process imports it and calls it; inside,
`evaluators.evaluate.evaluate_job` runs it in the real sandbox (bubblewrap + seccomp + rlimits)
under the given memory limit. Each cell is the median of --repeats runs; a random-but-fixed linear
policy acts on batches from `evaluators.toolkit.rl.VecRollout` (SyncVectorEnv).

    nice -n 10 .venv/bin/python -m benchmarks.perf.rl_throughput [--repeats 3] [--memory-mb 1024]

Prints a table; writes benchmarks/out/rl_throughput.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks.harness.store import out_file, write_json
from evaluators.evaluate import evaluate_job
from evaluators.isolation import layers
from evaluators.jobs import EvalJob

CASES = [("CartPole-v1", 1), ("CartPole-v1", 8), ("Pendulum-v1", 1), ("Pendulum-v1", 8),
         ("HalfCheetah-v5", 1), ("HalfCheetah-v5", 8)]
STEPS = 20_000  # env steps per measurement

EVALUATOR = '''
import json, os, time
import numpy as np
from evaluators.toolkit import rl


def measure(env_id, num_envs, steps):
    """Returns env steps/s of a fixed linear policy over `steps` steps (import excluded)."""
    rollout = rl.VecRollout(env_id, max_episode_steps=200)
    policy = rl.LinearPolicy(rollout.observation_space, rollout.action_space)
    act = policy.batch(np.random.default_rng(0).normal(0, 0.1, policy.n_params))
    done, wall, k = 0, 0.0, 0
    while done < steps:
        out = rollout.run(act, list(range(k, k + num_envs)), step_budget=steps - done)
        done, wall, k = done + out.steps, wall + out.wall_s, k + num_envs
    rollout.close()
    return done / wall


def evaluate(program_path):
    case = json.loads(open(program_path).read().split("=", 1)[1])
    return {"combined_score": measure(case["env"], case["num_envs"], case["steps"])}
'''


def outside(folder: Path, env_id: str, num_envs: int) -> float:
    """Returns steps/s measured in this process."""
    spec = importlib.util.spec_from_file_location("throughput_evaluator", folder / "evaluator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.measure(env_id, num_envs, STEPS)


def inside(folder: Path, env_id: str, num_envs: int, memory_mb: int) -> float:
    """Returns steps/s measured by the same code inside the sandbox."""
    case = json.dumps({"env": env_id, "num_envs": num_envs, "steps": STEPS})
    job = EvalJob(code=f"CASE={case}\n", problem_dir=str(folder),
                  evaluator_file=str(folder / "evaluator.py"), timeout_s=120, memory_mb=memory_mb)
    result = evaluate_job(job)
    if not result.ok:
        raise RuntimeError(f"{env_id} x{num_envs} in the sandbox: {result.error}")
    return float(result.score)


def main() -> None:
    """Measures every case both ways and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="measurements per cell (median)")
    parser.add_argument("--memory-mb", type=int, default=1024, help="sandbox address-space limit")
    args = parser.parse_args()
    print(f"sandbox layers: {', '.join(layers.active_names()) or 'none'}; "
          f"{STEPS} steps per measurement, median of {args.repeats}")
    print(f"{'env':15} {'envs':>4} {'outside/s':>10} {'sandbox/s':>10} {'ratio':>6}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # the sandbox's uid layer must be able to read it
        (folder / "evaluator.py").write_text(EVALUATOR)
        for env_id, n in CASES:
            out = statistics.median(outside(folder, env_id, n) for _ in range(args.repeats))
            ins = statistics.median(inside(folder, env_id, n, args.memory_mb)
                                    for _ in range(args.repeats))
            rows.append({"env": env_id, "num_envs": n, "outside_steps_s": out,
                         "sandbox_steps_s": ins, "ratio": ins / out})
            print(f"{env_id:15} {n:4d} {out:10.0f} {ins:10.0f} {ins / out:6.2f}", flush=True)
    write_json(out_file("rl_throughput.json"), {"memory_mb": args.memory_mb, "rows": rows})


if __name__ == "__main__":
    main()
