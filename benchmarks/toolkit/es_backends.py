"""ES backends side by side: numpy OpenAI-ES, pycma CMA-ES and evosax (JAX) strategies.

    nice -n 10 PYTHON -m benchmarks.toolkit.es_backends [--dim 10] [--evaluations 2000] [--seeds 3]

run from the repository root (it imports evaluators.toolkit from there). PYTHON needs numpy and
pycma, and the jax extra (`pip install 'evoforge[jax]'`) for the evosax rows; they are left out
with a note otherwise. Each strategy minimises the 10-D sphere and Rosenbrock functions through the
same ask/tell loop (es.minimise, popsize 16). Reports the median best value over seeds; the time of
construction + the first 5 generations for seed 0 (cold: JAX compiles ask and tell here) and for
later seeds (warm: es_jax reuses the compiled algorithm); and the time per later generation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from evaluators.toolkit import es, es_jax

STRATEGIES = {"openai_es": {"sigma": 0.1, "lr": 0.05}, "cma_es": {"sigma": 0.5},
              "evosax:CMA_ES": {"sigma": 0.5}, "evosax:SNES": {"sigma": 0.5},
              "evosax:Sep_CMA_ES": {"sigma": 0.5}}
POPSIZE = 16
WARMUP = 5  # generations timed apart from the rest


def measure(name: str, f: str, dim: int, evaluations: int, seed: int) -> tuple[float, float, float]:
    """Returns (best value, seconds for the first WARMUP generations, seconds per later one)."""
    started = time.perf_counter()
    strategy = es.make_strategy(name, np.full(dim, 1.5), popsize=POPSIZE, seed=seed,
                                **STRATEGIES[name])
    best = np.inf
    for _ in range(WARMUP):  # JAX compiles ask and tell during the first generations
        x = strategy.ask()
        values = es.FUNCTIONS[f](x)
        strategy.tell(x, -values)
        best = min(best, float(values.min()))
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    run = es.minimise(strategy, es.FUNCTIONS[f], evaluations - WARMUP * POPSIZE)
    rest = time.perf_counter() - started
    return min(best, run.best), warmup, rest / max(len(run.curve), 1)


def main() -> None:
    """Prints one markdown row per strategy and function."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=10, help="dimension of the functions")
    ap.add_argument("--evaluations", type=int, default=2000, help="budget per run")
    ap.add_argument("--seeds", type=int, default=3, help="runs per strategy and function")
    args = ap.parse_args()
    names = list(STRATEGIES)
    try:
        es_jax.evosax_modules()
    except es_jax.MissingExtraError as exc:
        print(f"note: evosax rows left out: {exc}")
        names = [n for n in names if not n.startswith(es_jax.PREFIX)]
    print("| strategy | function | best (median) | cold start s | warm start s "
          "| per generation ms |")
    print("|---|---|---:|---:|---:|---:|")
    for name in names:
        for f in ("sphere", "rosenbrock"):
            es_jax.clear_compiled()  # seed 0 starts cold, later seeds reuse the compiled one
            rows = [measure(name, f, args.dim, args.evaluations, s) for s in range(args.seeds)]
            best, per = (statistics.median(r[i] for r in rows) for i in (0, 2))
            warm = statistics.median(r[1] for r in rows[1:]) if len(rows) > 1 else float("nan")
            print(f"| {name} | {f} | {best:.3g} | {rows[0][1]:.2f} | {warm:.2f} | "
                  f"{per * 1e3:.2f} |")


if __name__ == "__main__":
    main()
