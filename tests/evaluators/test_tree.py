"""Programs that are folders: their one text form, the limits on them, reading a folder, and the
tree an evaluator gets in each way a job runs (fresh sandbox, pre-forked, two-phase)."""

from __future__ import annotations

import os
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from evaluators import tree
from evaluators.evaluate import evaluate_job
from evaluators.jobs import EvalJob

FILES = {"pkg/order.py": "def order(xs):\n    return sorted(xs)\n",
         "place.py": "from pkg.order import order\n\n\ndef place(xs):\n    return order(xs)[0]\n"}
EVALUATOR = """
import os, sys
from pathlib import Path

def evaluate(program_path):
    folder = Path(program_path)
    assert folder.is_dir(), program_path
    sys.path.insert(0, str(folder))
    import place
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py"))
    return {"combined_score": float(place.place([3, 1, 2])), "files": float(len(names))}
"""


def test_text_form_round_trips_and_a_single_file_is_its_text() -> None:
    code = tree.join(FILES)
    assert tree.is_tree(code) and tree.split(code) == FILES
    assert code.index("# ==== file: pkg/order.py ====") < code.index("# ==== file: place.py ====")
    assert tree.join({tree.SINGLE: "x = 1\n"}) == "x = 1\n"
    assert tree.split("x = 1\n") == {tree.SINGLE: "x = 1\n"} and not tree.is_tree("x = 1\n")


@pytest.mark.parametrize(("path", "says"), [
    ("/etc/passwd", "absolute"), ("../x.py", "'..'"), ("a/./b.py", "'.'"), (".env", "hidden"),
    ("a\\b.py", "plain relative"), ("x" * 300, "at most")])
def test_a_path_that_could_leave_the_folder_is_refused_by_name(path: str, says: str) -> None:
    with pytest.raises(tree.TreeError, match=says):
        tree.check({path: "x = 1\n"})


def test_limits_on_count_size_and_separator_lines_name_the_fix() -> None:
    with pytest.raises(tree.TreeError, match=f"at most {tree.MAX_FILES}"):
        tree.check({f"f{i}.py": "" for i in range(tree.MAX_FILES + 1)})
    with pytest.raises(tree.TreeError, match="bytes"):
        tree.check({"big.py": "#" * (tree.MAX_BYTES + 1)})
    with pytest.raises(tree.TreeError, match="reword that line"):
        tree.check({"a.py": "# ==== file: b.py ====\n"})
    with pytest.raises(tree.TreeError, match="no files"):
        tree.check({})


def test_reading_a_folder_refuses_links_and_binary_files_and_skips_caches(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "order.py").write_text(FILES["pkg/order.py"])
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0\1")
    assert tree.read_folder(tmp_path) == {"pkg/order.py": FILES["pkg/order.py"]}
    os.symlink("/etc/passwd", tmp_path / "link.py")
    with pytest.raises(tree.TreeError, match="symbolic link"):
        tree.read_folder(tmp_path)
    (tmp_path / "link.py").unlink()
    (tmp_path / "data.bin").write_bytes(b"\xff\xfe\0")
    with pytest.raises(tree.TreeError, match="not UTF-8"):
        tree.read_folder(tmp_path)


def test_placing_a_folder_program_replaces_only_a_folder_evoforge_wrote(tmp_path: Path) -> None:
    out = tree.place(tree.join(FILES), tmp_path / "best_program.py")
    assert out == tmp_path / "best_program" and tree.read_folder(out) == FILES
    smaller = {"place.py": "x = 2\n", "other.py": "y = 1\n"}
    assert tree.read_folder(tree.place(tree.join(smaller), tmp_path / "best_program.py")) == smaller
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(tree.TreeError, match="did not write"):
        tree.place(tree.join(FILES), mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    assert tree.place("x = 1\n", tmp_path / "single.py").read_text() == "x = 1\n"


def _job(tmp_path: Path, **extra: object) -> EvalJob:
    folder = tmp_path / "problem"
    folder.mkdir(exist_ok=True)
    (folder / "evaluator.py").write_text(textwrap.dedent(EVALUATOR))
    return EvalJob(code=tree.join(FILES), problem_dir=str(folder), evaluator_file="evaluator.py",
                   timeout_s=30, isolation="best-effort", **extra)


@pytest.mark.parametrize("prefork", [False, True])
def test_the_evaluator_gets_the_folder_with_every_file_in_fresh_and_forked_sandboxes(
        tmp_path: Path, prefork: bool) -> None:
    result = evaluate_job(_job(tmp_path, prefork=prefork))
    assert result.ok, result.error
    assert result.metrics == {"combined_score": 1.0, "files": 2.0}


def test_a_two_phase_folder_program_names_the_file_of_its_entry(tmp_path: Path) -> None:
    job = _job(tmp_path)
    (Path(job.problem_dir) / "scorer.py").write_text(
        "def score(data):\n    return {'combined_score': float(sum(data))}\n")
    files = {**FILES, "main.py": "from place import place\n\n\ndef build():\n"
                                 "    return [place([5, 4]), 10]\n"}
    two = replace(job, code=tree.join(files), scorer="scorer.py", entry="main.py:build")
    result = evaluate_job(two)
    assert result.ok and result.score == 14.0, result.error
    result = evaluate_job(replace(two, entry="build"))  # main.py is the default module
    assert result.ok and result.score == 14.0, result.error
