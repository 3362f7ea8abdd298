"""A stored run as the loop needs it: its row, its problem folder and its config.

A problem folder may be gone (another machine, a deleted checkout): it is re-created from the files
stored with the problem, under $EVOFORGE_HOME/problems/ID.
"""

from __future__ import annotations

from pathlib import Path

from evaluators import tree
from service.config import RunConfig
from service.db.models import ProblemRow, RunRow
from service.db.session import Database
from service.problems.load import Problem, load_problem
from service.settings import Settings


def problem_folder(prow: ProblemRow, settings: Settings) -> Path:
    """Returns a folder holding the stored problem: its own, or one re-created from its files."""
    folder = Path(prow.path)
    if (folder / "evaluator.py").is_file() or (folder / "problem.toml").is_file():
        return folder
    folder = settings.home / "problems" / str(prow.id)
    write_files(prow.files, folder)
    return folder


def write_files(files: dict[str, str], folder: Path) -> None:
    """Writes a stored problem's files, by relative path, into folder (sub-folders made)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = folder / tree.check_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def load_run(db: Database, run_id: int, settings: Settings) -> tuple[RunRow, Problem, RunConfig]:
    """Returns a stored run, its problem (re-created from the stored files if the folder is gone)
    and its config."""
    with db.session() as s:
        run = s.get(RunRow, run_id)
        if run is None:
            raise LookupError(f"no run {run_id} in {db.url}; `evoforge runs list` shows the runs")
        prow = s.get(ProblemRow, run.problem_id)
    return run, load_problem(problem_folder(prow, settings)), RunConfig.model_validate(run.config)
