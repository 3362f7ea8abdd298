"""The optional evosax (JAX) backend behind es.py's ask/tell, on real problems and in the sandbox.

JAX and evosax are not in evoforge's default install (~600 MB): these tests skip without them,
with the reason naming the command; `pip install 'evoforge[jax]'` makes them run. The error a
user gets without the extra is tested either way.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluators.evaluate import evaluate_job
from evaluators.jobs import EvalJob
from evaluators.toolkit import es, es_jax

HAVE_JAX = all(importlib.util.find_spec(m) is not None for m in ("jax", "evosax", "optax"))
needs_jax = pytest.mark.skipif(not HAVE_JAX, reason="optional evosax backend not installed; "
                               f"run {es_jax.INSTALL}")
TARGET = np.array([1.0, -2.0, 0.5, 3.0, -1.0])


def shifted_sphere(x: np.ndarray) -> np.ndarray:
    """Returns |x - TARGET|^2 per row; f(0) = 15.25."""
    return np.sum((np.atleast_2d(x) - TARGET) ** 2, axis=1)


def test_without_jax_the_error_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evosax", None)  # import evosax now fails, installed or not
    with pytest.raises(es_jax.MissingExtraError, match=r"pip install 'evoforge\[jax\]'"):
        es.make_strategy("evosax:CMA_ES", np.zeros(3))


@needs_jax
def test_unknown_evosax_strategy_is_refused_with_the_names() -> None:
    with pytest.raises(ValueError, match=r"unknown evosax strategy 'CMA'.*'CMA_ES'.*'SNES'"):
        es.make_strategy("evosax:CMA", np.zeros(3))
    with pytest.raises(ValueError, match=r"evosax SV_CMA_ES: .*num_populations"):
        es.make_strategy("evosax:SV_CMA_ES", np.zeros(3))


@needs_jax
@pytest.mark.parametrize(("name", "options", "tolerance"), [
    ("CMA_ES", {"sigma": 1.0}, 1e-8),                          # distribution-based, std_init
    ("Open_ES", {"sigma": 0.1, "adam_lr": 0.1}, 0.05),          # std_schedule + optimizer
    ("DifferentialEvolution", {"sigma": 2.0}, 1e-6),           # population-based: seeded by tell
])
def test_evosax_strategies_minimise_a_shifted_quadratic(name: str, options: dict,
                                                        tolerance: float) -> None:
    options = dict(options)
    if "adam_lr" in options:
        import optax

        options["optimizer"] = optax.adam(options.pop("adam_lr"))
    strategy = es.make_strategy(f"evosax:{name}", np.zeros(5), popsize=16, seed=1, **options)
    asked = strategy.ask()
    assert asked.shape == (16, 5) and asked.dtype == np.float64
    strategy.tell(asked, -shifted_sphere(asked))
    run = es.minimise(strategy, shifted_sphere, 1600)
    assert run.best < tolerance, f"{name}: {run.best}"
    assert float(shifted_sphere(strategy.mean)[0]) < max(1000 * tolerance, 0.1)
    with pytest.raises(RuntimeError, match="tell\\(\\) before ask\\(\\)"):
        strategy.tell(asked, np.zeros(16))


@needs_jax
def test_strategies_of_one_shape_share_the_compiled_algorithm_but_not_their_state() -> None:
    a = es_jax.EvosaxES(np.zeros(4), "SNES", sigma=0.3, popsize=8, seed=0)
    b = es_jax.EvosaxES(np.zeros(4), "SNES", sigma=0.3, popsize=8, seed=1)
    c = es_jax.EvosaxES(np.zeros(4), "SNES", sigma=0.5, popsize=8, seed=0)
    assert a._algo is b._algo and a._algo is not c._algo
    xa = a.ask()
    a.tell(xa, -np.sum((xa - 1.0) ** 2, axis=1))
    assert np.all(b.mean == 0) and not np.allclose(a.mean, 0)
    assert not np.allclose(b.ask(), xa)


@needs_jax
def test_evosax_cma_es_solves_cartpole_with_a_linear_policy() -> None:
    rl = pytest.importorskip("evaluators.toolkit.rl",
                             reason="needs gymnasium: pip install 'evoforge[gym]'")
    rollout = rl.VecRollout("CartPole-v1")
    trained = rl.train_linear_policy(
        lambda d: es.make_strategy("evosax:CMA_ES", np.zeros(d), sigma=0.5, popsize=16, seed=0),
        rollout, episodes=480, seed=0, test_seeds=range(1000, 1010))
    rollout.close()
    assert trained.final_return == 500.0


JAX_EVALUATOR = '''
import importlib.util

import numpy as np

from evaluators.toolkit import es


def _status_mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return float(line.split()[1]) / 1024


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    target = np.asarray(program.target(), dtype=float)
    strategy = es.make_strategy("evosax:CMA_ES", np.zeros(target.size), sigma=1.0, popsize=12)
    run = es.minimise(strategy, lambda x: np.sum((x - target) ** 2, axis=1), 1200)
    return {"combined_score": -run.best, "vm_peak_mb": _status_mb("VmPeak"),
            "rss_peak_mb": _status_mb("VmHWM")}
'''


@needs_jax
def test_a_problem_using_jax_is_scored_in_the_sandbox_under_2_gib(tmp_path: Path) -> None:
    folder = tmp_path / "jax_problem"
    folder.mkdir()
    (folder / "evaluator.py").write_text(JAX_EVALUATOR)
    job = EvalJob(code="def target():\n    return [0.5, -1.0, 2.0, 0.25]\n",
                  problem_dir=str(folder), evaluator_file=str(folder / "evaluator.py"),
                  timeout_s=180, memory_mb=2048)
    result = evaluate_job(job)
    assert result.ok, f"{result.error}\n{result.artifacts.get('stderr', '')[-2000:]}"
    assert result.score > -1e-8
    assert result.metrics["vm_peak_mb"] < 2048  # what JAX + CMA-ES mapped: at most the limit
