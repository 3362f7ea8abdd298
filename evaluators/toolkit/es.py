"""Evolution strategies behind one ask/tell interface that maximises fitness.

OpenAI-ES (Salimans et al. 2017: antithetic sampling, centred ranks, Adam) is plain numpy;
CMA-ES is pycma's, with the fitness negated since pycma minimises. ask() returns a (pop, dim)
array, tell(solutions, fitness) takes them back with one fitness per row (higher is better),
and `mean` is the current best estimate of the optimum. `make_strategy("evosax:NAME", ...)`
builds any evosax (JAX) algorithm behind the same interface (es_jax.py; the optional `jax` extra).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def centred_ranks(fitness: np.ndarray) -> np.ndarray:
    """Returns the ranks of fitness scaled into [-0.5, 0.5] (ties broken by position)."""
    x = np.asarray(fitness, dtype=np.float64).reshape(-1)
    if x.size < 2:
        return np.zeros_like(x)
    ranks = np.empty(x.size)
    ranks[np.argsort(x, kind="stable")] = np.arange(x.size)
    return ranks / (x.size - 1) - 0.5


class Adam:
    """The Adam update for gradient ascent on a parameter vector."""

    def __init__(self, dim: int, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m, self.v, self.t = np.zeros(dim), np.zeros(dim), 0

    def step(self, grad: np.ndarray) -> np.ndarray:
        """Returns the step to add to the parameters for an ascent direction grad."""
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1 ** self.t)
        v_hat = self.v / (1 - self.beta2 ** self.t)
        return self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class OpenAIES:
    """OpenAI-ES: mean +- sigma * eps pairs, centred-rank gradient estimate, Adam ascent."""

    def __init__(self, x0: np.ndarray, sigma: float = 0.1, popsize: int = 16, lr: float = 0.03,
                 weight_decay: float = 0.0, seed: int = 0) -> None:
        if popsize < 2 or popsize % 2:
            raise ValueError(f"OpenAI-ES popsize must be even and at least 2 (antithetic pairs), "
                             f"got {popsize}")
        self.mean = np.array(x0, dtype=np.float64).reshape(-1)
        self.sigma, self.popsize, self.weight_decay = sigma, popsize, weight_decay
        self.adam = Adam(self.mean.size, lr)
        self.rng = np.random.default_rng(seed)
        self._eps: np.ndarray | None = None

    def ask(self) -> np.ndarray:
        """Returns popsize candidates: antithetic pairs around the mean."""
        half = self.rng.standard_normal((self.popsize // 2, self.mean.size))
        self._eps = np.concatenate([half, -half])
        return self.mean + self.sigma * self._eps

    def tell(self, solutions: np.ndarray, fitness: np.ndarray) -> None:
        """Moves the mean along the rank-weighted noise (solutions must be the last ask())."""
        if self._eps is None:
            raise RuntimeError("tell() before ask(): call ask() first and pass its candidates back")
        eps = (np.asarray(solutions, dtype=np.float64) - self.mean) / self.sigma
        weights = centred_ranks(fitness)
        grad = weights @ eps / (len(weights) * self.sigma)
        grad -= self.weight_decay * self.mean
        self.mean = self.mean + self.adam.step(grad)
        self._eps = None


class CMAES:
    """CMA-ES from pycma behind the maximising ask/tell interface."""

    def __init__(self, x0: np.ndarray, sigma: float = 0.5, popsize: int | None = None,
                 seed: int = 0) -> None:
        import cma  # the gym extra; imported here so OpenAI-ES and evosax work without it

        opts: dict[str, Any] = {"seed": seed + 1, "verbose": -9, "verb_log": 0, "verb_disp": 0}
        if popsize is not None:
            opts["popsize"] = popsize
        self._es = cma.CMAEvolutionStrategy(np.array(x0, dtype=np.float64), sigma, opts)
        self.popsize = int(self._es.popsize)

    @property
    def mean(self) -> np.ndarray:
        """Returns the distribution mean."""
        return np.asarray(self._es.mean)

    def ask(self) -> np.ndarray:
        """Returns popsize candidates sampled from the current Gaussian."""
        return np.asarray(self._es.ask())

    def tell(self, solutions: np.ndarray, fitness: np.ndarray) -> None:
        """Updates mean, step size and covariance (pycma minimises, so fitness is negated)."""
        self._es.tell(list(np.asarray(solutions)),
                      (-np.asarray(fitness, dtype=np.float64)).tolist())


STRATEGIES: dict[str, Callable[..., Any]] = {"openai_es": OpenAIES, "cma_es": CMAES}


def make_strategy(name: str, x0: np.ndarray, **options: Any) -> Any:
    """Returns the registered strategy, or evosax's for "evosax:NAME"; ValueError lists names."""
    if name.startswith("evosax:"):
        from evaluators.toolkit.es_jax import (
            EvosaxES,  # without JAX: MissingExtraError naming the extra
        )

        return EvosaxES(x0, name.removeprefix("evosax:"), **options)
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)} or "
                         "'evosax:NAME' (any evosax algorithm, the optional jax extra)")
    return STRATEGIES[name](x0, **options)


# ---------------------------------------------------------------- black-box functions (minimise)

def sphere(x: np.ndarray) -> np.ndarray:
    """Returns sum(x^2) per row; minimum 0 at the origin."""
    return np.sum(np.atleast_2d(x) ** 2, axis=1)


def rastrigin(x: np.ndarray) -> np.ndarray:
    """Returns the Rastrigin function per row; minimum 0 at the origin, many local minima."""
    x = np.atleast_2d(x)
    return 10.0 * x.shape[1] + np.sum(x * x - 10.0 * np.cos(2 * np.pi * x), axis=1)


def rosenbrock(x: np.ndarray) -> np.ndarray:
    """Returns the Rosenbrock function per row; minimum 0 at (1, ..., 1), a curved valley."""
    x = np.atleast_2d(x)
    return np.sum(100.0 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2, axis=1)


def ellipsoid(x: np.ndarray) -> np.ndarray:
    """Returns the ill-conditioned ellipsoid sum(10^(6 i/(d-1)) x_i^2) per row; minimum 0."""
    x = np.atleast_2d(x)
    scales = 10.0 ** (6.0 * np.arange(x.shape[1]) / max(x.shape[1] - 1, 1))
    return np.sum(scales * x * x, axis=1)


FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sphere": sphere, "rastrigin": rastrigin, "rosenbrock": rosenbrock, "ellipsoid": ellipsoid}


@dataclass
class Minimisation:
    """The best value an ask/tell strategy found on a function, and its path there."""

    best: float
    evaluations: int
    curve: list[tuple[int, float]] = field(default_factory=list)


def minimise(strategy: Any, f: Callable[[np.ndarray], np.ndarray],
             evaluations: int) -> Minimisation:
    """Returns the best f found by a maximising ask/tell strategy within an evaluation budget."""
    used, best, curve = 0, np.inf, []
    while used < evaluations:
        x = np.asarray(strategy.ask(), dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"ask() returned shape {x.shape}; it must return (popsize, dim)")
        if not np.all(np.isfinite(x)):
            raise ValueError("ask() returned NaN or infinite candidates")
        values = f(x)
        used += len(x)
        strategy.tell(x, -values)
        best = min(best, float(np.min(values)))
        curve.append((used, best))
    return Minimisation(best, used, curve)
