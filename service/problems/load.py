"""Loads a problem folder: problem.toml (evoforge) or config.yaml (OpenEvolve), initial program,
evaluator."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evaluators import tree
from service.config import ConfigError, deep_merge, read_toml
from service.problems.direction import Direction
from service.problems.seeds import Seed, SeedError, read_seeds, whole_file_note
from service.problems.shipped import shipped

OPENEVOLVE_THRESHOLDS = (0.5, 0.75, 0.9)  # its evaluator.cascade_thresholds when a config has none
_PROBLEM_KEYS = {"name", "description", "score_metric", "direction", "best_known",
                 "best_known_source", "best_known_tolerance", "best_known_verified",
                 "best_known_check", "best_known_note", "initial_program", "initial_programs",
                 "evaluator", "language", "scorer", "entry"}


class ProblemError(ValueError):
    """A problem folder is malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class Problem:
    """A loaded problem folder."""

    name: str
    path: Path
    description: str
    initial_code: str  # the first seed's text form (evaluators/tree.py)
    evaluator_path: Path
    score_metric: str = "combined_score"
    direction: Direction = Direction.MAXIMIZE
    best_known: float | None = None
    best_known_source: str | None = None       # who found it, where it is published, when
    best_known_tolerance: float | None = None  # constraint slack it holds at (0.0: exactly)
    best_known_verified: bool = False          # our scorer re-scored a public construction to it
    best_known_check: str | None = None        # the command that re-scores it
    best_known_note: str | None = None         # caveats: why it is not verified, variants, ...
    run_defaults: dict[str, Any] = field(default_factory=dict)
    score_fallback_mean: bool = False
    notes: tuple[str, ...] = ()
    scorer_path: Path | None = None  # two-phase: the trusted scorer (score(data) -> metrics)
    entry: str | None = None         # two-phase: the program's function that returns the data
    advisory: dict[str, Any] = field(default_factory=dict)  # run settings read from a file
    # written for another model (OpenEvolve's config.yaml), by dotted key: hints, fitted to the
    # model that serves the run (service/runs.py), never a reason to refuse or pause a run
    seeds: tuple[Seed, ...] = ()  # the starting programs, one island each in turn (first: the
    # initial program), as read; empty means initial_code alone

    @property
    def starts(self) -> tuple[Seed, ...]:
        """Returns the starting programs: the seeds, or the initial program alone."""
        return self.seeds or (Seed("initial_program", self.initial_code),)

    @property
    def is_tree(self) -> bool:
        """Returns True when the programs are folders (their evaluator gets a folder path)."""
        return tree.is_tree(self.initial_code)

    @property
    def two_phase(self) -> bool:
        """Returns True when the program returns data that a separate trusted scorer verifies."""
        return self.scorer_path is not None


def load_problem(folder: str | Path) -> Problem:
    """Returns the Problem in a folder, or in the shipped problem of that name when no such
    folder exists; raises ProblemError naming the file and the fix."""
    path = Path(folder)
    if not path.is_dir():
        path = shipped().get(str(folder), path)
    path = path.resolve()
    if not path.is_dir():
        raise ProblemError(f"{folder}: not a folder, nor the name of a shipped problem; give the "
                           "path of a problem folder holding initial_program.py and "
                           "evaluator.py, or a name `evoforge problems list` shows")
    toml_path, yaml_path = path / "problem.toml", path / "config.yaml"
    advisory: dict[str, Any] = {}
    if toml_path.is_file() and yaml_path.is_file():  # problem.toml adds to config.yaml
        meta, run_defaults, notes, advisory = _from_openevolve(yaml_path)
        own, own_run, _, _ = _from_toml(toml_path)
        meta, run_defaults = {**meta, **own}, deep_merge(run_defaults, own_run)
        notes = [*notes, "problem.toml beside config.yaml: its settings win where both set one"]
        fallback = "score_metric" not in own  # OpenEvolve's mean, unless a metric is named
    elif toml_path.is_file():
        meta, run_defaults, notes, fallback = _from_toml(toml_path)
    elif yaml_path.is_file():
        meta, run_defaults, notes, advisory = _from_openevolve(yaml_path)
        fallback = True
    else:
        meta, run_defaults, notes, fallback = {}, {}, ("no problem.toml: using defaults",), True
    evaluator = path / meta.get("evaluator", "evaluator.py")
    scorer, entry = _two_phase(meta, path, toml_path)
    if scorer is not None and "evaluator" not in meta and not evaluator.is_file():
        evaluator = scorer  # a two-phase problem needs no OpenEvolve-style evaluator
    if not evaluator.is_file():
        raise ProblemError(f"{evaluator}: missing; a problem folder needs {evaluator.name} with "
                           "evaluate(program_path) -> dict")
    try:
        seeds = read_seeds(path, meta, toml_path)
    except SeedError as exc:
        raise ProblemError(str(exc)) from None
    whole = whole_file_note(seeds)
    notes = (*notes, whole) if whole else notes
    code = seeds[0].code
    direction = meta.get("direction", Direction.MAXIMIZE)
    if direction not in tuple(Direction):
        raise ProblemError(f"{toml_path}: direction = {direction!r}; use 'maximize' or 'minimize'")
    best = meta.get("best_known")
    reference = _reference(meta, toml_path)
    return Problem(
        name=str(meta.get("name") or path.name), path=path,
        description=str(meta.get("description") or _docstring(_first_file(code)) or path.name),
        initial_code=code, evaluator_path=evaluator,
        score_metric=str(meta.get("score_metric", "combined_score")),
        direction=Direction(direction),
        best_known=float(best) if best is not None else None,
        best_known_source=meta.get("best_known_source"), **reference, run_defaults=run_defaults,
        score_fallback_mean=fallback, notes=tuple(notes), scorer_path=scorer, entry=entry,
        advisory=advisory, seeds=seeds)


def _reference(meta: dict[str, Any], toml: Path) -> dict[str, Any]:
    """Returns the best_known_* facts beyond value and source, checked; raises ProblemError."""
    given = {k: meta[k] for k in ("best_known_tolerance", "best_known_verified",
                                  "best_known_check", "best_known_note") if k in meta}
    if given and meta.get("best_known") is None:
        raise ProblemError(f"{toml}: {sorted(given)} describe best_known, which is not set; "
                           "add best_known = <value> or remove them")
    tolerance = given.get("best_known_tolerance")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(
            tolerance, int | float) or not tolerance >= 0):
        raise ProblemError(f"{toml}: best_known_tolerance = {tolerance!r}; give the constraint "
                           "slack the value holds at as a number >= 0 (0.0: holds exactly)")
    if not isinstance(given.get("best_known_verified", False), bool):
        raise ProblemError(f"{toml}: best_known_verified = {given['best_known_verified']!r}; "
                           "use true or false")
    for key in ("best_known_check", "best_known_note"):
        if not isinstance(given.get(key, ""), str):
            raise ProblemError(f"{toml}: {key} must be a string")
    if tolerance is not None:
        given["best_known_tolerance"] = float(tolerance)
    return given


def _two_phase(meta: dict[str, Any], folder: Path, toml: Path) -> tuple[Path | None, str | None]:
    """Returns (scorer path, entry name) of a two-phase problem, (None, None) otherwise."""
    scorer, entry = meta.get("scorer"), meta.get("entry")
    if scorer is None and entry is None:
        return None, None
    if scorer is None or entry is None:
        given, missing = ("scorer", "entry") if entry is None else ("entry", "scorer")
        raise ProblemError(f"{toml}: [problem] sets {given} but not {missing}; a two-phase problem "
                           "needs both, e.g. scorer = \"scorer.py\" and entry = \"construct\"")
    if not isinstance(entry, str) or not entry.rpartition(":")[2].isidentifier():
        raise ProblemError(f"{toml}: entry = {entry!r} is not a Python function name; name the "
                           "function of the program that returns the data, e.g. \"construct\" "
                           "(a folder program names its file too: \"main.py:construct\")")
    path = (folder / str(scorer)).resolve()
    if not path.is_file() or folder not in path.parents:
        raise ProblemError(f"{toml}: scorer = {scorer!r}: no such file in {folder}; put the "
                           "trusted scorer (def score(data) -> dict) in the problem folder")
    return path, entry


def _from_toml(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[str], bool]:
    data = _read(path)
    unknown = set(data) - {"problem", "run"}
    if unknown:
        raise ProblemError(f"{path}: unknown table(s) {sorted(unknown)}; "
                           "only [problem] and [run] exist")
    meta = data.get("problem", {})
    bad = set(meta) - _PROBLEM_KEYS
    if bad:
        raise ProblemError(f"{path}: unknown key(s) {sorted(bad)} in [problem]; "
                           f"known keys are {sorted(_PROBLEM_KEYS)}")
    return meta, data.get("run", {}), [], False


def _read(path: Path) -> dict[str, Any]:
    try:
        return read_toml(path)
    except ConfigError as exc:
        raise ProblemError(str(exc)) from None


def _first_file(code: str) -> str:
    """Returns the text of a program's first file (a single-file program: its text)."""
    return next(iter(tree.split(code).values()))


def _docstring(code: str) -> str | None:
    match = re.match(r'\s*(?:#[^\n]*\n\s*)*(?:"""|\'\'\')(.*?)(?:"""|\'\'\')', code, re.DOTALL)
    return match.group(1).strip() if match else None


def _from_openevolve(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[str],
                                         dict[str, Any]]:
    """Translates the OpenEvolve config.yaml settings that mean something here into a run layer;
    returns (meta, run layer, notes, advisory LLM settings by dotted key)."""
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProblemError(f"{path}: invalid YAML ({exc}); fix the syntax") from None
    if not isinstance(cfg, dict):
        raise ProblemError(f"{path}: expected a mapping at the top level")
    run: dict[str, Any] = {}
    notes: list[str] = []

    def put(section: str | None, key: str, value: Any) -> None:
        if value is not None:
            (run.setdefault(section, {}) if section else run)[key] = value

    put("budget", "iterations", cfg.get("max_iterations"))
    put(None, "seed", cfg.get("random_seed"))
    llm = cfg.get("llm") or {}
    advisory = _advisory_llm(llm, path.name, notes)
    for dotted, value in advisory.items():
        put("llm", dotted.removeprefix("llm."), value)
    prompt = cfg.get("prompt") or {}
    put("llm", "system_message", prompt.get("system_message") or llm.get("system_message"))
    if "diff_based_evolution" in cfg:  # diffs where the serving model writes them (auto):
        # a small model gets full rewrites whatever a config for a large one asked
        put("llm", "answer_format", "auto" if cfg["diff_based_evolution"] else "rewrite")
    db = cfg.get("database") or {}
    mapping = {"num_islands": "num_islands", "population_size": "population_size",
               "migration_interval": "migration_interval", "migration_rate": "migration_rate",
               "exploitation_ratio": "exploit_ratio", "exploration_ratio": "explore_ratio",
               "feature_dimensions": "feature_dimensions"}
    for theirs, ours in mapping.items():
        put("search", ours, db.get(theirs))
    if isinstance(db.get("feature_bins"), int):
        put("search", "feature_bins", db["feature_bins"])
    ev = cfg.get("evaluator") or {}
    put("evaluation", "timeout_s", ev.get("timeout"))
    if ev.get("cascade_evaluation", True):  # OpenEvolve's defaults: a cascade at 0.5, 0.75, 0.9
        thresholds = ev.get("cascade_thresholds")
        put("evaluation", "cascade_thresholds",
            list(OPENEVOLVE_THRESHOLDS) if thresholds is None else thresholds)
    if llm.get("api_base") or llm.get("models"):
        notes.append(f"{path.name}: llm endpoint/models ignored; "
                     "choose them with --llm/--llm-url/--model")
    return {}, run, notes, advisory


def _advisory_llm(llm: dict[str, Any], name: str, notes: list[str]) -> dict[str, Any]:
    """Returns the config's sampling settings by dotted key, each moved into the range a run
    accepts (a note says so): they were chosen for another model and must not refuse a run."""
    out: dict[str, Any] = {}
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 1e-6, 1.0),
                           ("max_tokens", 16, None)):
        value = llm.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        fitted = max(low, value if high is None else min(value, high))
        if key == "max_tokens":
            fitted = int(fitted)
        if fitted != value:
            notes.append(f"{name}: llm.{key} = {value} is outside what a run accepts; using "
                         f"{fitted}")
        out[f"llm.{key}"] = fitted
    return out
