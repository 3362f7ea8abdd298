"""OpenEvolve's side of vs_openevolve: its own venv, a config.yaml mirroring evoforge's, read back.

OpenEvolve 0.4.1 is installed from PyPI into benchmarks/.venv-openevolve (git-ignored; nothing of
its code is in this repository) and run as `openevolve-run` in a subprocess. Its config mirrors
the evoforge run config of the same problem (model, sampling, islands, inspirations, evaluation
timeout and parallelism, seed); its evolution trace (JSONL, one line per iteration) gives the
curve, its log the evaluation times and its best/ folder the best program.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path
from statistics import fmean
from typing import Any

import yaml

from benchmarks.harness.curves import best_curve, time_curve
from benchmarks.harness.processes import run_group
from benchmarks.harness.venvs import OPENEVOLVE
from service.config import RunConfig
from service.llm.models import small_model_from_name
from service.problems.export import export_openevolve
from service.problems.load import Problem

_EVALUATED = re.compile(r"Evaluated program(?: \S+)? in ([0-9.]+)s")

# The problem's evaluator may return an object with .metrics / .artifacts (evoforge accepts it);
# OpenEvolve accepts only a dict or its EvaluationResult, so this shim converts, nothing else.
# It is written into the run's folder and runs in OpenEvolve's process; its one path edit gives
# the problem's evaluator its own folder to import from, as evoforge's sandbox does (it is not
# how the benchmarks import themselves).
_SHIM = '''"""Loads {evaluator} and hands its result to OpenEvolve as a dict / EvaluationResult."""
import importlib.util
import sys

sys.path.insert(0, {folder!r})
_spec = importlib.util.spec_from_file_location("problem_evaluator", {evaluator!r})
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)


def evaluate(program_path):
    result = _module.evaluate(program_path)
    if isinstance(result, dict) or not hasattr(result, "metrics"):
        return result
    from openevolve.evaluation_result import EvaluationResult
    artifacts = {{k: str(v) for k, v in (getattr(result, "artifacts", None) or {{}}).items()}}
    return EvaluationResult(metrics=dict(result.metrics), artifacts=artifacts)
'''


def peer_config(problem: Problem, cfg: RunConfig, url: str, model: str, iterations: int,
                seed: int, workers: int, trace: Path) -> dict[str, Any]:
    """Returns OpenEvolve's config.yaml content mirroring the evoforge run config."""
    return {
        "max_iterations": iterations,
        "checkpoint_interval": max(iterations, 1),
        "random_seed": seed,
        "log_level": "INFO",
        # evoforge answers with full rewrites on small models (llm.answer_format = auto), diffs
        # otherwise; OpenEvolve gets the same answer format
        "diff_based_evolution": _uses_diffs(cfg, model),
        "llm": {"api_base": url, "api_key": "none", "primary_model": model,
                "temperature": cfg.llm.temperature, "top_p": cfg.llm.top_p,
                "max_tokens": cfg.llm.max_tokens, "timeout": int(cfg.llm.timeout_s),
                "retries": cfg.llm.retries},
        "prompt": {"system_message": cfg.llm.system_message or problem.description,
                   "num_top_programs": cfg.search.num_top_inspirations,
                   "num_diverse_programs": cfg.search.num_diverse_inspirations},
        "database": {"num_islands": cfg.search.num_islands,
                     "population_size": cfg.search.population_size * cfg.search.num_islands,
                     "migration_interval": cfg.search.migration_interval,
                     "migration_rate": cfg.search.migration_rate, "random_seed": seed},
        "evaluator": {"timeout": int(cfg.evaluation.timeout_s), "parallel_evaluations": workers,
                      "cascade_evaluation": False},
        "evolution_trace": {"enabled": True, "format": "jsonl", "output_path": str(trace),
                            "include_failures": True, "buffer_size": 1},
    }


def _uses_diffs(cfg: RunConfig, model: str) -> bool:
    """Returns True when evoforge would ask this model for SEARCH/REPLACE diffs."""
    if cfg.llm.answer_format != "auto":
        return cfg.llm.answer_format == "diff"
    return not small_model_from_name(model)


def write_evaluator(problem: Problem, work: Path) -> Path:
    """Writes work/evaluator.py, the file OpenEvolve imports to score a program of problem."""
    evaluator = problem.evaluator_path
    if problem.two_phase and evaluator == problem.scorer_path:  # no OpenEvolve evaluator.py:
        evaluator = export_openevolve(problem.path, work / "problem") / "evaluator.py"  # its entry
    path = work / "evaluator.py"
    path.write_text(_SHIM.format(folder=str(evaluator.parent), evaluator=str(evaluator)))
    return path


def run_openevolve(problem: Problem, cfg: RunConfig, url: str, model: str, iterations: int,
                   seed: int, workers: int, work: Path, initial: float | None = None,
                   timeout_s: float = 3600) -> dict[str, Any]:
    """Runs openevolve-run once; returns its curve, timings and best code.

    initial is the initial program's score to use when the run's files do not hold it (a run
    stopped by its target score before any checkpoint).
    """
    python = OPENEVOLVE.ensure()
    work.mkdir(parents=True, exist_ok=True)
    (work / "initial_program.py").write_text(problem.initial_code)
    write_evaluator(problem, work)
    trace = work / "trace.jsonl"
    (work / "config.yaml").write_text(yaml.safe_dump(
        peer_config(problem, cfg, url, model, iterations, seed, workers, trace), sort_keys=False))
    cmd = [str(python.parent / "openevolve-run"), str(work / "initial_program.py"),
           str(work / "evaluator.py"), "--config", str(work / "config.yaml"),
           "--output", str(work / "out"), "--iterations", str(iterations)]
    if cfg.budget.target_score is not None:
        cmd += ["--target-score", str(cfg.budget.target_score)]
    started = time.monotonic()
    t0 = time.time()
    with (work / "run.log").open("w") as log:
        proc = run_group(cmd, timeout_s, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    wall = time.monotonic() - started
    text = (work / "run.log").read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"openevolve-run on {problem.name} seed {seed} failed "
                           f"({proc.returncode}); log {work / 'run.log'}: {text[-1500:]}")
    return {"wall_s": wall} | _read_back(problem, work, trace, text, t0, initial)


def _read_back(problem: Problem, work: Path, trace: Path, log: str, t0: float,
               fallback_initial: float | None) -> dict[str, Any]:
    """Returns curve, time curve, evaluation timings and best code from the run's files."""
    maximize = problem.direction == "maximize"
    metric = problem.score_metric
    rows = [json.loads(ln) for ln in trace.read_text().splitlines() if ln.strip()] \
        if trace.exists() else []
    failures_file = trace.with_name(f"{trace.stem}_failures.jsonl")
    failures = len(failures_file.read_text().splitlines()) if failures_file.exists() else 0
    points = [(r["iteration"], _score(r.get("child_metrics") or {}, metric)) for r in rows]
    initial = _initial_score(work, metric)
    initial = fallback_initial if initial is None else initial
    last = max([r["iteration"] for r in rows] + [0])
    evals = [float(s) for s in _EVALUATED.findall(log)]
    best_file = work / "out" / "best" / "best_program.py"
    return {
        "curve": best_curve([(0, initial), *points], last, maximize),
        "time_curve": time_curve([(0.0, initial)] + [
            (r["timestamp"] - t0, s) for r, (_, s) in zip(rows, points, strict=True)], maximize),
        "initial_score": initial, "iterations": last,
        "eval_s_mean": fmean(evals) if evals else None, "evals_timed": len(evals),
        "programs": len(rows), "scored": sum(s is not None for _, s in points),
        "failed_iterations": failures,
        "best_code": best_file.read_text() if best_file.exists() else None,
    }


def _score(metrics: dict[str, Any], metric: str) -> float | None:
    """Returns the score metric when it is a finite number and the program did not error."""
    value = metrics.get(metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value) or "error" in metrics:
        return None
    return float(value)


def _initial_score(work: Path, metric: str) -> float | None:
    """Returns the initial program's score from the run's first checkpoint or best info."""
    for info in sorted((work / "out").glob("checkpoints/*/programs/*.json")):
        prog = json.loads(info.read_text())
        if prog.get("iteration_found") == 0 and prog.get("parent_id") is None:
            return _score(prog.get("metrics") or {}, metric)
    return None
