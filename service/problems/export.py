"""Exports a problem folder in OpenEvolve's format: its files, the OpenEvolve entry, config.yaml.

A two-phase problem (scorer + entry in problem.toml) keeps no evaluator.py of its own: evoforge
does not need one. The export copies the folder and writes the one shared OpenEvolve entry
(evaluators/compat/openevolve_entry.py) as evaluator.py, which reads entry and scorer from the
copied problem.toml; a problem with its own evaluator.py keeps it. config.yaml carries what the
problem itself sets (prompt, iterations, evaluation timeout, answer length); the LLM endpoint is
the user's.

OpenEvolve evolves one file: a problem whose program is a folder (evaluators/tree.py) is refused
before anything is written, and of several single-file starting programs the first is exported.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

import evaluators.compat
from evaluators import tree
from service.config import build_run_config
from service.problems.load import Problem, ProblemError, load_problem

FORMATS = ("openevolve",)
ENTRY_FILE = Path(evaluators.compat.__file__).resolve().parent / "openevolve_entry.py"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".evoforge")


def export_openevolve(folder: str | Path, out: str | Path) -> Path:
    """Returns the folder out, after writing the problem there as OpenEvolve runs it."""
    problem = load_problem(folder)
    if problem.is_tree:
        raise ProblemError(folder_refusal(problem))
    dest = Path(out).resolve()
    if dest == problem.path or problem.path in dest.parents:
        raise ProblemError(f"{out}: inside the problem folder {problem.path}; export elsewhere")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ProblemError(f"{out}: exists and is not an empty folder; give a new folder")
    shutil.copytree(problem.path, dest, ignore=_SKIP, dirs_exist_ok=True)
    if problem.two_phase and problem.evaluator_path == problem.scorer_path:
        (dest / "evaluator.py").write_text(ENTRY_FILE.read_text())
    if not (dest / "initial_program.py").exists():  # problem.toml named it otherwise
        (dest / "initial_program.py").write_text(problem.initial_code)
    if not (dest / "config.yaml").exists():
        (dest / "config.yaml").write_text(
            "# OpenEvolve settings from problem.toml; add llm.api_base and llm.models\n"
            + yaml.safe_dump(openevolve_config(problem), sort_keys=False))
    return dest


def folder_refusal(problem: Problem) -> str:
    """Returns why a problem whose program is a folder cannot be exported, and what to do."""
    names = ", ".join(tree.split(problem.initial_code))
    return (f"{problem.path}: problem {problem.name!r} cannot be exported for OpenEvolve: its "
            f"program is a folder of files ({names}) and OpenEvolve evolves a single file; "
            f"run it with `evoforge run {problem.path}`, or make its program one file "
            "(initial_program.py, with its EVOLVE-BLOCKs) to export it")


def seed_note(problem: Problem) -> str | None:
    """Returns what the export left out of a problem with several starting programs, or None."""
    if len(problem.starts) < 2:
        return None
    first, rest = problem.starts[0].name, [s.name for s in problem.starts[1:]]
    return (f"{problem.name} has {len(problem.starts)} starting programs; OpenEvolve starts from "
            f"one, so initial_program.py is the first, {first!r}; OpenEvolve will not start from "
            f"{', '.join(repr(r) for r in rest)} (copied as they were)")


def openevolve_config(problem: Problem) -> dict[str, Any]:
    """Returns the OpenEvolve config.yaml settings that the problem's own run defaults give."""
    cfg = build_run_config(problem.run_defaults, source=str(problem.path / "problem.toml"))
    # OpenEvolve has no gates (its cascade never calls evaluate() after the stages): a problem
    # whose stages are gates is scored there by evaluate() alone
    cascade = bool(cfg.evaluation.cascade_thresholds) and not cfg.evaluation.cascade_gates
    evaluator: dict[str, Any] = {"timeout": int(cfg.evaluation.timeout_s),
                                 "cascade_evaluation": cascade}
    if cascade:
        evaluator["cascade_thresholds"] = list(cfg.evaluation.cascade_thresholds)
    settings: dict[str, Any] = {
        "llm": {"max_tokens": cfg.llm.max_tokens, "temperature": cfg.llm.temperature},
        "prompt": {"system_message": cfg.llm.system_message or problem.description},
        "evaluator": evaluator, "random_seed": cfg.seed}
    if cfg.budget.iterations is not None:
        settings = {"max_iterations": cfg.budget.iterations, **settings}
    return settings


def openevolve_command(dest: Path) -> str:
    """Returns the openevolve-run command line for an exported folder."""
    return (f"openevolve-run {dest / 'initial_program.py'} {dest / 'evaluator.py'} "
            f"--config {dest / 'config.yaml'}")
