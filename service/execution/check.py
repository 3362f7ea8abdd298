"""Checks a problem folder before a run: loads it, then runs its evaluator only in the sandbox."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluators import tree
from evaluators.evaluate import evaluate_job
from evaluators.jobs import EvalResult, FailureKind
from service.config import ConfigError, build_run_config
from service.execution.base import make_job
from service.problems.blocks import lenient_blocks
from service.problems.load import Problem, ProblemError, load_problem
from service.problems.seeds import Seed

_RUN_TABLE = ("the [run.evaluation] table of problem.toml (or the [evaluation] table of a RUN.toml "
              "given with --config)")


@dataclass(frozen=True)
class Defect:
    """One thing wrong with a problem folder: which file, what, and how to fix it."""

    file: str
    message: str
    fix: str


@dataclass
class CheckReport:
    """What `evoforge problems check` found."""

    path: Path
    defects: list[Defect] = field(default_factory=list)
    result: EvalResult | None = None
    problem: Problem | None = None
    warnings: list[str] = field(default_factory=list)  # a run goes on, but look at these
    gates: bool = False  # the cascade's stages are hard gates (evaluation.cascade_gates)
    others: list[tuple[Seed, EvalResult]] = field(default_factory=list)  # the starting programs
    # after the first, when the problem has several

    @property
    def ok(self) -> bool:
        """Returns True when nothing is wrong and a run can start from the initial program (it
        was scored, or it missed a gate, which a run lets it past)."""
        return not self.defects and self.result is not None and (
            self.result.ok or self.result.past_gate() is not None)

    def render(self) -> str:
        """Returns the report for humans."""
        name = self.problem.name if self.problem else self.path.name
        lines = [f"problem {name} ({self.path})"]
        for note in self.problem.notes if self.problem else ():
            lines.append(f"  note: {note}")
        if self.problem is not None:
            lines.append(f"  program: {program_line(self.problem)}")
        for record in self.result.stages if self.result else ():
            lines.append(f"  stage {record['stage']}: {stage_line(record, self.gates)}")
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.ok and self.result is not None and self.problem is not None:
            result = self.result if self.result.ok else self.result.past_gate()
            metrics = ", ".join(f"{k}={v:g}" for k, v in sorted(result.metrics.items()))
            name = self.problem.score_metric
            what = name if name in result.metrics else f"the mean of the metrics: no {name}"
            lines.append(f"  OK: the initial program scored {result.score:g} ({what}) in "
                         f"{result.duration_s:.2f} s; {metrics}")
            lines += self._seed_lines()
            return "\n".join(lines)
        lines += self._seed_lines()
        lines.append(f"  {len(self.defects)} defect(s):")
        for d in self.defects:
            lines += [f"  - {d.file}: {d.message}", f"    fix: {d.fix}"]
        trace = self.result.artifacts.get("traceback") if self.result else None
        if trace and self.problem is not None:
            trace = _rename_program(trace, _program_name(self.problem))
            lines.append("  traceback (problem code only):")
            lines += [f"    {ln}" for ln in trace.splitlines()]
        return "\n".join(lines)


    def _seed_lines(self) -> list[str]:
        """Returns each starting program's score when the problem has several."""
        if not self.others or self.problem is None or self.result is None:
            return []
        lines = [f"  {len(self.others) + 1} starting programs, each scored:"]
        for seed, result in ((self.problem.starts[0], self.result), *self.others):
            lines.append(f"  - {seed.name}: " + (
                f"{result.score:g} ({self.problem.score_metric}) in {result.duration_s:.2f} s"
                if result.ok else f"failed ({result.error_kind}): "
                f"{_seed_error(self.problem, seed, result)}"))
        return lines


def program_line(problem: Problem) -> str:
    """Returns what the starting program is: one file, or a folder and its files (which evolve)."""
    first = problem.starts[0]
    where = _relative(problem, first)
    if len(problem.starts) > 1:
        where += f" (the first of {len(problem.starts)} starting programs)"
    if not problem.is_tree:
        return f"one file, {where}"
    files = tree.split(first.code)
    shown = ", ".join(f"{rel} (EVOLVE-BLOCK)" if lenient_blocks(text) else rel
                      for rel, text in files.items())
    return f"a folder, {where}/, of {len(files)} files: {shown}"


def check_problem(path: str | Path, python: str = sys.executable) -> CheckReport:
    """Returns the check report of a problem folder; problem code runs only in the sandbox."""
    report = CheckReport(path=Path(path))
    try:
        problem = load_problem(path)
    except ProblemError as exc:
        report.defects.append(_problem_defect(str(exc), Path(path)))
        return report
    report.problem, report.path = problem, problem.path
    try:
        cfg = build_run_config(problem.run_defaults, source=str(problem.path / "problem.toml"))
    except ConfigError as exc:
        report.defects.append(_problem_defect(str(exc), problem.path))
        return report
    if problem.two_phase and cfg.evaluation.cascade_thresholds:
        report.defects.append(Defect(
            str(problem.path / "problem.toml"), "cascade_thresholds are set, but a two-phase "
            "problem has no cascade stages (the scorer gives the only score)",
            f"remove cascade_thresholds from {_RUN_TABLE}"))
    report.gates = cfg.evaluation.cascade_gates
    job = make_job(problem, problem.initial_code, cfg.evaluation)
    probe = evaluate_job(job, python, check=True)
    report.result = result = probe if not probe.ok else evaluate_job(job, python)
    if not probe.ok and probe.error_kind != FailureKind.EVALUATOR:  # import timed out, crashed, ...
        report.defects.append(Defect(
            str(_trusted_file(problem)), f"importing the evaluator: {probe.error}",
            "keep the evaluator's import quick and safe; do the work inside evaluate()"))
    elif not result.ok and result.past_gate() is None:
        defect = _result_defect(result, problem)
        if result.reported_error:  # what the evaluator said, beside how it failed
            defect = Defect(defect.file, f"{defect.message} (the evaluator reported: "
                            f"{result.reported_error})", defect.fix)
        report.defects.append(defect)
    else:
        _scored_warnings(report, result.past_gate() or result, problem, python)
    for seed in problem.starts[1:]:  # every starting program begins an island: score each
        other = evaluate_job(make_job(problem, seed.code, cfg.evaluation), python)
        report.others.append((seed, other))
        if not other.ok and other.past_gate() is None:
            report.defects.append(Defect(
                str(problem.path / _relative(problem, seed)),
                f"the starting program {seed.name!r} failed ({other.error_kind}): "
                f"{_seed_error(problem, seed, other)}",
                "fix it or remove it from the starting programs; each one seeds an island"))
    return report


def stage_line(record: dict[str, Any], gates: bool) -> str:
    """Returns what one cascade stage did, in words (its metrics, threshold, passed or stopped)."""
    shown = ", ".join(f"{k}={v:g}" for k, v in sorted(record["metrics"].items())) or "no metrics"
    if record.get("error"):
        return (f"raised {record['error']}; stopped: the stages before it are kept, with "
                f"stage{record['stage']}_passed = 0")
    value, threshold = record["value"], record["threshold"]
    got = "no numeric metric" if value is None else f"{value:g} ({record['compared']})"
    if threshold is None:
        return f"{shown}; no threshold: " + ("passed" if gates else "the cascade ends here")
    if record["passed"]:
        return f"{shown}; {got} >= threshold {threshold:g}: passed"
    then = ("a gate: the program fails" if gates else
            "stopped: the program is scored by the metrics of the stages it ran")
    return f"{shown}; {got} < threshold {threshold:g}: {then}"


def _scored_warnings(report: CheckReport, result: EvalResult, problem: Problem,
                     python: str) -> None:
    """Adds what a scored initial program should make the author look at: a score that is the
    mean of several metrics, a missed gate, an error the evaluator reported (a defect when it
    leaves the score at 0)."""
    averaged = sorted(k for k in result.metrics if k != "error")
    if problem.score_metric not in result.metrics and len(averaged) > 1:
        report.warnings.append(
            f"the score is the mean of {len(averaged)} metrics ({', '.join(averaged)}), as "
            f"OpenEvolve scores a result without {problem.score_metric}; if one of them is what "
            "to maximise, name it: score_metric = '...' under [problem] in problem.toml (beside "
            "a config.yaml it adds to it), and direction = 'minimize' for a cost")
    if "cascade_gate" in result.artifacts:
        report.warnings.append(f"the initial program {result.artifacts['cascade_gate']}: a run "
                               "goes on from it; every child must pass the gate")
    error = result.reported_error
    if error is None:
        return
    evaluator = str(_trusted_file(problem))
    if result.score:
        report.warnings.append(f"the evaluator reported an error for the initial program: {error}")
        return
    report.defects.append(Defect(
        evaluator, f"the initial program scored {result.score!r} because the evaluator reported "
        f"an error: {error}", _error_fix(error, python)))


def _error_fix(error: str, python: str) -> str:
    """Returns how to fix an error an evaluator met: install a missing module, else fix it."""
    missing = re.search(r"No module named '([\w.]+)'", error)
    if missing:
        module = missing.group(1).split(".")[0]
        return (f"install the missing module '{module}' in the Python that runs evaluations: "
                f"`{python} -m pip install {module}` (its package may be named otherwise)")
    return "fix what the error says, so that the initial program is scored"


def _problem_defect(message: str, folder: Path) -> Defect:
    """Returns a defect from a 'FILE: what; fix' message of ProblemError or ConfigError."""
    file, _, rest = message.partition(": ")
    if not rest:
        file, rest = str(folder), message
    what, sep, fix = rest.rpartition("; ")
    if not sep:
        what, fix = rest, "correct the problem folder as the message says"
    return Defect(file=file, message=what, fix=fix)


def _result_defect(result: EvalResult, problem: Problem) -> Defect:
    """Returns the defect that a failed evaluation of the initial program shows."""
    evaluator, program = str(_trusted_file(problem)), str(problem.path / _program_name(problem))
    error = _rename_program(result.error or "failed without a reason", Path(program).name)
    kind = result.error_kind
    if kind == FailureKind.REJECTED:
        return Defect(program, f"the initial program's data was not accepted: {error}",
                      f"make {problem.entry}() return data that {Path(evaluator).name} accepts")
    if kind == FailureKind.EVALUATOR:
        fix = ("add `def evaluate(program_path):` returning a dict of metrics"
               if "defines no evaluate" in error else
               "add `def score(data):` returning a dict of metrics (raise ValueError to reject)"
               if "defines no score" in error else
               f"fix the import error shown (install the missing module or correct the code); "
               f"`cd {problem.path} && python -c 'import {Path(evaluator).stem}'` reproduces it")
        return Defect(evaluator, _without_fix(error.removeprefix(f"{evaluator}: ")), fix)
    if kind in (FailureKind.INVALID_METRICS, FailureKind.MISSING_SCORE):
        fix = ("return a dict of finite numbers from evaluate(), e.g. {'combined_score': 0.5}"
               if kind == FailureKind.INVALID_METRICS else
               f"add '{problem.score_metric}' to the dict evaluate() returns, or set score_metric "
               "in problem.toml to one of the keys it returns")
        shown = _without_fix(error) if kind == FailureKind.MISSING_SCORE else error
        return Defect(evaluator, shown, fix)
    if kind == FailureKind.CASCADE:  # a gate missed with no value to score the program by
        return Defect(evaluator, error, "make the stage return the score metric (or any "
                      f"numeric metric), or lower cascade_thresholds in {_RUN_TABLE}")
    if kind == FailureKind.TIMEOUT:
        return Defect(program, f"evaluating the initial program {error}",
                      f"make the program and evaluator faster, or raise timeout_s in {_RUN_TABLE}")
    if kind == FailureKind.MEMORY:
        return Defect(program, error, f"use less memory, or raise memory_mb in {_RUN_TABLE}; "
                      "JAX/XLA and other runtimes reserve gigabytes of address space at start: "
                      "8192 fits them")
    inside = re.search(rf"(?<![\w/.-]){re.escape(_program_name(problem))}/([\w/.-]+):", error)
    where = (program + "/" + inside.group(1) if inside and problem.is_tree else
             program if f"{Path(program).name}:" in error else evaluator)
    return Defect(where, f"the initial program failed: {error}",
                  "fix the error shown so the initial program scores; it is the seed of every run")


def _trusted_file(problem: Problem) -> Path:
    """Returns the file that scores programs: the two-phase scorer, else the evaluator."""
    return problem.scorer_path or problem.evaluator_path


def _program_name(problem: Problem) -> str:
    """Returns the initial program's path in the problem folder (problem.toml may rename it)."""
    return _relative(problem, problem.starts[0])


def _relative(problem: Problem, seed: Seed) -> str:
    """Returns where a starting program lives, relative to the problem folder."""
    if seed.path is not None and problem.path in seed.path.parents:
        return seed.path.relative_to(problem.path).as_posix()
    return seed.name if problem.is_tree else f"{seed.name}.py"


def _seed_error(problem: Problem, seed: Seed, result: EvalResult) -> str:
    """Returns a starting program's failure, naming its own file instead of the sandbox's."""
    return _rename_program(result.error or "failed without a reason",
                           Path(_relative(problem, seed)).name)


def _without_fix(message: str) -> str:
    """Returns a runner message without its trailing '; how to fix' (the defect has its own)."""
    return message.rpartition("; ")[0] or message


def _rename_program(text: str, name: str) -> str:
    """Returns text with the sandbox's program.py (a folder program: program/) called by the
    initial program's name."""
    if not name.endswith(".py"):
        return re.sub(rf"(?<![\w/.-]){tree.PROGRAM_DIR}/", f"{name}/", text)
    return re.sub(r"(?<![\w/.-])program\.py", name, text)
