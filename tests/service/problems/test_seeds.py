"""A problem's starting programs: a file, a folder, several under initial_programs/ or listed in
problem.toml; every malformed one refused with its path and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evaluators import tree
from service.problems.load import ProblemError, load_problem

BLOCK = "# EVOLVE-BLOCK-START\ndef f(x):\n    return {}\n# EVOLVE-BLOCK-END\n"
EVALUATOR = "def evaluate(program_path):\n    return {'combined_score': 1.0}\n"


def folder(tmp_path: Path, files: dict[str, str], toml: str = "") -> Path:
    root = tmp_path / "problem"
    for rel, text in {"evaluator.py": EVALUATOR, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    if toml:
        (root / "problem.toml").write_text(toml)
    return root


def test_a_folder_initial_program_is_a_tree_of_its_files(tmp_path: Path) -> None:
    problem = load_problem(folder(tmp_path, {
        "initial_program/solve.py": BLOCK.format(1), "initial_program/util/io.py": "X = 1\n"}))
    assert problem.is_tree and len(problem.starts) == 1
    assert tree.split(problem.initial_code) == {"solve.py": BLOCK.format(1),
                                                "util/io.py": "X = 1\n"}


def test_each_program_under_initial_programs_is_a_seed_in_name_order(tmp_path: Path) -> None:
    problem = load_problem(folder(tmp_path, {
        "initial_programs/b_greedy/solve.py": BLOCK.format(2),
        "initial_programs/a_random/solve.py": BLOCK.format(1)}))
    assert [s.name for s in problem.starts] == ["a_random", "b_greedy"]
    assert problem.initial_code == problem.starts[0].code and problem.is_tree


def test_seeds_listed_in_problem_toml_keep_their_order(tmp_path: Path) -> None:
    toml = '[problem]\ninitial_programs = ["seeds/slow.py", "seeds/fast.py"]\n'
    problem = load_problem(folder(tmp_path, {"seeds/fast.py": BLOCK.format(2),
                                             "seeds/slow.py": BLOCK.format(1)}, toml))
    assert [s.name for s in problem.starts] == ["slow", "fast"] and not problem.is_tree


@pytest.mark.parametrize(("files", "toml", "says"), [
    ({"initial_programs/a.py": BLOCK.format(1), "initial_programs/b/x.py": BLOCK.format(2)}, "",
     "all files or all folders"),
    ({"initial_program/x.py": "x = 1\n"}, "", "no '# EVOLVE-BLOCK-START'"),
    ({"initial_program/x.py": "# EVOLVE-BLOCK-START\nx = 1\n"}, "", "close every block"),
    ({"initial_program/program.py": BLOCK.format(1)}, "", "initial_program.py instead"),
    ({}, '[problem]\ninitial_programs = ["../elsewhere.py"]\n', "outside the problem folder"),
    ({}, "[problem]\ninitial_programs = []\n", "give a list of paths"),
    ({"initial_programs/.keep": ""}, "", "empty"),
])
def test_a_malformed_seed_is_refused_naming_it(tmp_path: Path, files: dict[str, str], toml: str,
                                               says: str) -> None:
    with pytest.raises(ProblemError, match=says):
        load_problem(folder(tmp_path, files, toml))


def test_a_link_inside_a_folder_program_is_refused(tmp_path: Path) -> None:
    root = folder(tmp_path, {"initial_program/solve.py": BLOCK.format(1)})
    os.symlink("/etc/hostname", root / "initial_program" / "host.py")
    with pytest.raises(ProblemError, match="symbolic link"):
        load_problem(root)
