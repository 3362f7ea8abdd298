"""Any evosax (JAX) strategy by name behind the maximising numpy ask/tell interface of es.py.

Optional: JAX and evosax are not installed with evoforge (+468 MB); `pip install 'evoforge[jax]'`
adds them. `es.make_strategy("evosax:CMA_ES", x0, ...)` or `EvosaxES(x0, "SNES")` builds one;
ask() returns a float64 (popsize, dim) array and tell(solutions, fitness) takes one fitness per
row, higher is better (evosax minimises, so fitness is negated on the way in). Population-based
algorithms (GA, DE, PSO) start from x0 + sigma * N(0, I): their first tell() seeds them.
JAX compiles ask and tell per algorithm instance (seconds): strategies of the same name, popsize,
dimension and sigma built without extra options share one instance, so only the first compiles.
JAX and its CPU LAPACK map ~1.6 GiB of address space (VmPeak; RSS ~0.4 GB): a sandboxed
evaluation that imports them needs `memory_mb >= 2048` (docs/benchmarks.md).
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import numpy as np

INSTALL = "pip install 'evoforge[jax]'   (or: pip install 'jax[cpu]' 'evosax>=0.2')"
PREFIX = "evosax:"  # es.make_strategy names, e.g. "evosax:CMA_ES"


class MissingExtraError(ImportError):
    """JAX or evosax is not installed; the message names the command that installs them."""


def evosax_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """Returns (jax, evosax.algorithms, optax), or raises MissingExtraError naming the extra."""
    try:
        import jax
        import optax
        from evosax import algorithms
    except ImportError as exc:
        raise MissingExtraError(
            f"the evosax backend needs JAX and evosax, which evoforge does not install by "
            f"default ({exc}); install them with: {INSTALL}") from exc
    return jax, algorithms, optax


def algorithm_names() -> list[str]:
    """Returns the names of every evosax algorithm this adapter can build."""
    return sorted(evosax_modules()[1].algorithms)


class EvosaxES:
    """An evosax algorithm chosen by name; numpy in and out, fitness maximised."""

    def __init__(self, x0: np.ndarray, strategy: str = "CMA_ES", sigma: float = 0.5,
                 popsize: int = 16, seed: int = 0, **options: Any) -> None:
        jax, algorithms, optax = evosax_modules()
        if strategy not in algorithms.algorithms:
            raise ValueError(f"unknown evosax strategy {strategy!r}; choose one of "
                             f"{sorted(algorithms.algorithms)}")
        from evosax.algorithms.population_based.base import PopulationBasedAlgorithm

        self._jax, self.name, self.sigma = jax, strategy, float(sigma)
        self._x0 = np.array(x0, dtype=np.float64).reshape(-1)
        key = (strategy, popsize, self._x0.size, self.sigma)
        self._algo = None if options else _BUILT.get(key)  # compiled ask/tell belong to it
        if self._algo is None:
            self._algo = _build(algorithms.algorithms[strategy], strategy, popsize,
                                jax.numpy.zeros(self._x0.size), optax.constant_schedule(self.sigma),
                                options)
            if not options:
                _BUILT[key] = self._algo
        self.popsize = popsize
        params = self._algo.default_params
        if hasattr(params, "std_init"):
            params = params.replace(std_init=jax.numpy.asarray(self.sigma))
        self._params = params
        self._key = jax.random.key(seed)
        self._population_based = isinstance(self._algo, PopulationBasedAlgorithm)
        self._rng = np.random.default_rng(seed)  # the initial population of population-based ones
        self._state: Any = None
        if not self._population_based:
            self._state = self._algo.init(self._next_key(), self._x0, self._params)
        self._asked: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        """Returns the distribution mean (population-based: the best solution so far)."""
        if self._state is None:
            return self._x0.copy()
        if self._population_based:
            return np.asarray(self._algo.get_best_solution(self._state), dtype=np.float64)
        return np.asarray(self._algo.get_mean(self._state), dtype=np.float64)

    def ask(self) -> np.ndarray:
        """Returns popsize candidates (float64, shape (popsize, dim))."""
        if self._state is None:  # a population-based algorithm before its first tell()
            x = self._x0 + self.sigma * self._rng.standard_normal((self.popsize, self._x0.size))
        else:
            population, self._state = self._algo.ask(self._next_key(), self._state, self._params)
            x = np.asarray(population, dtype=np.float64)
        self._asked = x
        return x.copy()

    def tell(self, solutions: np.ndarray, fitness: np.ndarray) -> None:
        """Updates the algorithm from one fitness per candidate (higher is better)."""
        if self._asked is None:
            raise RuntimeError("tell() before ask(): call ask() first and pass its candidates back")
        jnp = self._jax.numpy
        x = jnp.asarray(np.asarray(solutions, dtype=np.float64).reshape(self._asked.shape))
        loss = -jnp.asarray(np.asarray(fitness, dtype=np.float64).reshape(-1))
        if loss.shape[0] != x.shape[0]:
            raise ValueError(f"tell() got {loss.shape[0]} fitness values for {x.shape[0]} "
                             "candidates; give one per row of ask()")
        if self._state is None:
            self._state = self._algo.init(self._next_key(), x, loss, self._params)
        else:
            self._state, _ = self._algo.tell(self._next_key(), x, loss, self._state, self._params)
        self._asked = None

    def _next_key(self) -> Any:
        self._key, key = self._jax.random.split(self._key)
        return key


_BUILT: dict[tuple[str, int, int, float], Any] = {}  # JAX compiles per instance: reuse them


def clear_compiled() -> None:
    """Forgets the shared algorithm instances (the next strategy of each shape compiles again)."""
    _BUILT.clear()


def _build(cls: type, name: str, popsize: int, solution: Any, schedule: Any,
           options: dict[str, Any]) -> Any:
    """Returns the evosax algorithm; sigma goes into its std_schedule where it takes one."""
    if "std_schedule" in inspect.signature(cls.__init__).parameters:
        options = {"std_schedule": schedule, **options}
    try:
        return cls(population_size=popsize, solution=solution, **options)
    except TypeError as exc:  # a required constructor argument, e.g. SV_CMA_ES's
        raise ValueError(f"evosax {name}: {exc}; pass its constructor arguments as keyword "
                         "options") from None
