"""Answers to a program that is a folder: edits go to the file they name, never across files,
and whatever would break another file is rejected with the file's name in the reason."""

from __future__ import annotations

from evaluators import tree
from service.edits.apply import apply_answer
from service.edits.identity import code_hash
from service.edits.tree_edit import named_path

ORDER = "# EVOLVE-BLOCK-START\ndef order(items):\n    return sorted(items, reverse=True)\n" \
        "# EVOLVE-BLOCK-END\n"
PLACE = "import math\n\n# EVOLVE-BLOCK-START\ndef place(item, bins):\n    return 0\n" \
        "# EVOLVE-BLOCK-END\n"
GLUE = "from order import order\nfrom place import place\n"
PARENT = tree.join({"order.py": ORDER, "place.py": PLACE, "pack.py": GLUE})


def diff(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_one_answer_edits_two_files_each_under_its_name() -> None:
    answer = (diff("`order.py`", "    return sorted(items, reverse=True)",
                   "    return sorted(items)")
              + "\nand then\n\n"
              + diff("# ==== file: place.py ====", "    return 0", "    return len(bins)"))
    edit = apply_answer(PARENT, answer, "diff")
    assert edit.ok and edit.changed and edit.blocks_applied == 2, edit.rejection
    files = tree.split(edit.code)
    assert files["order.py"] == ORDER.replace(", reverse=True", "")
    assert "return len(bins)" in files["place.py"] and files["pack.py"] == GLUE


def test_an_unnamed_block_goes_to_the_one_file_it_fits() -> None:
    edit = apply_answer(PARENT, diff("", "    return 0", "    return 1"), "diff")
    assert edit.ok and "return 1" in tree.split(edit.code)["place.py"]


def test_an_unnamed_block_that_fits_two_files_asks_for_the_name() -> None:
    both = tree.join({"a.py": PLACE, "b.py": PLACE})
    edit = apply_answer(both, diff("", "    return 0", "    return 1"), "diff")
    assert not edit.ok and "several files (a.py, b.py)" in edit.rejection
    assert "name the file" in edit.rejection


def test_an_edit_to_a_file_the_program_lacks_is_rejected_naming_its_files() -> None:
    edit = apply_answer(PARENT, diff("solver.py", "    return 0", "    return 1"), "diff")
    assert not edit.ok and "solver.py, which is not a file of the program" in edit.rejection
    assert "order.py, pack.py, place.py" in edit.rejection


def test_an_edit_outside_the_named_files_blocks_is_rejected_with_its_path() -> None:
    edit = apply_answer(PARENT, diff("place.py", "import math", "import os"), "diff")
    assert not edit.ok and edit.rejection.startswith("place.py: ")
    assert "outside EVOLVE-BLOCK" in edit.rejection


def test_a_block_of_one_file_cannot_be_edited_through_another_file() -> None:
    edit = apply_answer(PARENT, diff("order.py", "    return 0", "    return 1"), "diff")
    assert not edit.ok and "order.py" in edit.rejection and "not found" in edit.rejection


def test_a_rewrite_that_breaks_a_files_markers_or_syntax_names_the_file() -> None:
    answer = "place.py\n```python\ndef place(item, bins):\n    return (\n```\n"
    edit = apply_answer(PARENT, answer, "rewrite", repair=False)
    assert not edit.ok and "place.py" in edit.rejection and "SyntaxError" in edit.rejection
    marker = "order.py\n```python\n# EVOLVE-BLOCK-END\ndef order(items):\n    return items\n```\n"
    edit = apply_answer(PARENT, marker, "rewrite", repair=False)
    assert not edit.ok and edit.rejection.startswith("order.py: ")


def test_a_rewrite_goes_to_the_target_file_unless_it_names_another() -> None:
    answer = "```python\ndef place(item, bins):\n    return len(bins) - 1\n```\n"
    edit = apply_answer(PARENT, answer, "rewrite", target="place.py")
    assert edit.ok and "len(bins) - 1" in tree.split(edit.code)["place.py"]
    named = "order.py:\n```python\ndef order(items):\n    return list(items)\n```\n"
    edit = apply_answer(PARENT, named, "rewrite", target="place.py")
    assert edit.ok and "list(items)" in tree.split(edit.code)["order.py"]
    assert tree.split(edit.code)["place.py"] == PLACE
    edit = apply_answer(PARENT, answer, "rewrite")  # two files with blocks and no target
    assert not edit.ok and "which file it rewrites" in edit.rejection


def test_the_code_hash_covers_every_file_and_its_path() -> None:
    moved = tree.join({"order.py": PLACE, "place.py": ORDER, "pack.py": GLUE})
    assert code_hash(moved) != code_hash(PARENT)
    reformatted = tree.join({"order.py": ORDER.replace("(items, reverse=True)",
                                                       "(items,  reverse=True)"),
                             "place.py": PLACE, "pack.py": GLUE})
    assert code_hash(reformatted) == code_hash(PARENT)
    assert code_hash("x = 1\n") == code_hash("x=1  # same\n")


def test_file_names_are_read_from_the_ways_models_write_them() -> None:
    for line in ("order.py", "`order.py`", "**order.py**", "### order.py", "File: order.py",
                 "# ==== file: order.py ====", "order.py:"):
        assert named_path(line) == "order.py", line


TWO = ("# EVOLVE-BLOCK-START\ndef first(x):\n    return 1\n# EVOLVE-BLOCK-END\n\n\n"
       "def fixed():\n    return 0\n\n\n"
       "# EVOLVE-BLOCK-START\ndef second(x):\n    return 2\n# EVOLVE-BLOCK-END\n")
BLOCKS = tree.join({"order.py": ORDER, "place.py": TWO})


def test_a_rewrite_naming_one_block_of_a_file_replaces_that_block_alone() -> None:
    answer = "place.py#2\n```python\ndef second(x):\n    return 22\n```\n"
    edit = apply_answer(BLOCKS, answer, "rewrite")
    assert edit.ok, edit.rejection
    assert tree.split(edit.code)["place.py"] == TWO.replace("return 2\n", "return 22\n")
    edit = apply_answer(BLOCKS, "```python\ndef first(x):\n    return 11\n```\n", "rewrite",
                        target="place.py#1")
    assert edit.ok and tree.split(edit.code)["place.py"] == TWO.replace("return 1\n",
                                                                         "return 11\n")
    edit = apply_answer(BLOCKS, "place.py#3\n```python\nx = 1\n```\n", "rewrite")
    assert not edit.ok and "place.py: it has 2 EVOLVE-BLOCK(s)" in edit.rejection
