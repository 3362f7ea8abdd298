"""A stored run's problem is re-created from the database when its folder is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.db import Database, upgrade
from service.db.stored import load_run
from service.problems.load import load_problem
from service.runs import create_run
from service.settings import Settings
from tests.conftest import REPO
from tests.service.engine_helpers import config, tiny_problem


def several_seeds(folder: Path) -> Path:
    """Returns a tiny problem whose starting programs are initial_programs/one.py and two.py."""
    tiny_problem(folder)
    seed = (folder / "initial_program.py").read_text()
    (folder / "initial_program.py").unlink()
    (folder / "initial_programs").mkdir()
    (folder / "initial_programs" / "one.py").write_text(seed)
    (folder / "initial_programs" / "two.py").write_text(seed.replace("return 1", "return 2"))
    return folder


@pytest.mark.parametrize("make", [
    lambda f: Path(shutil.copytree(REPO / "problems" / "bin_packing_files", f)),  # a folder seed
    several_seeds,
])
def test_a_problem_whose_seeds_live_in_sub_folders_loads_again_from_the_database(
        db_url: str, tmp_path: Path, make: object) -> None:
    upgrade(db_url)
    db = Database(db_url)
    try:
        folder = make(tmp_path / "gone")
        original = load_problem(folder)
        run_id = create_run(db, original, config())
        shutil.rmtree(folder)  # another machine, a deleted checkout
        _, problem, _ = load_run(db, run_id, Settings(home=tmp_path / "home", db=db_url))
    finally:
        db.close()
    assert problem.path == (tmp_path / "home" / "problems" / "1").resolve()
    assert [(s.name, s.code) for s in problem.starts] == [
        (s.name, s.code) for s in original.starts]
    assert problem.is_tree == original.is_tree
