"""service.edits.diff: SEARCH/REPLACE answers edit only inside the EVOLVE-BLOCKs, or are rejected
with a reason the model can act on."""

from __future__ import annotations

import pytest

from service.edits.apply import apply_answer
from tests.service.edits.parents import PARENT, TWO_BLOCKS, accepted, body, diff, run


def test_diff_inside_the_block_replaces_those_lines_and_keeps_the_rest() -> None:
    answer = "I use the closed form.\n" + diff("    for i in range(n):\n        total += i",
                                                  "    total = n * (n - 1) // 2")
    result = apply_answer(PARENT, answer, "diff")
    child = accepted(result)
    assert body(child) == "    total = n * (n - 1) // 2\n"
    assert (result.format_used, result.changed, result.blocks_applied) == ("diff", True, 1)
    assert run(child) == 45


def test_diff_touching_code_outside_the_block_is_rejected_with_its_line() -> None:
    result = apply_answer(PARENT, diff("    return total", "    return total + 1"), "diff")
    assert result.code is None and result.format_used == "diff"
    assert result.rejection is not None
    assert "outside EVOLVE-BLOCK at line 11" in result.rejection


def test_diff_search_that_spans_the_end_marker_is_rejected() -> None:
    search = "        total += i\n    # EVOLVE-BLOCK-END\n    return total"
    result = apply_answer(PARENT, diff(search, "        total += 2 * i\n    return total"), "diff")
    assert result.rejection is not None and "outside EVOLVE-BLOCK at line 10" in result.rejection


def test_diff_search_that_is_not_in_the_program_is_rejected_naming_its_first_line() -> None:
    answer = diff("\n    for j in range(n + 1):\n        pass", "x = 1")
    result = apply_answer(PARENT, answer, "diff")
    assert result.code is None
    assert "not found" in result.rejection and "for j in range(n + 1):" in result.rejection


def test_diff_with_an_empty_search_part_is_rejected() -> None:
    result = apply_answer(PARENT, diff("", "    total = 1"), "diff")
    assert result.code is None and "empty SEARCH" in result.rejection


def test_diff_matches_despite_lost_indentation_and_trailing_spaces_and_reindents() -> None:
    search = "for i in range(n):   \n    total += i"
    replace = "for i in range(1, n):\n    total += i"
    child = accepted(apply_answer(PARENT, diff(search, replace), "diff"))
    assert body(child) == "    for i in range(1, n):\n        total += i\n"
    assert run(child) == 45


def test_diff_applies_blocks_in_order_and_each_sees_the_previous_edits() -> None:
    answer = (diff("        total += i", "        total += 2 * i")
              + "and then\n" + diff("        total += 2 * i", "        total += 3 * i"))
    result = apply_answer(PARENT, answer, "diff")
    assert result.blocks_applied == 2 and run(accepted(result)) == 135


def test_diff_edits_several_evolve_blocks_of_one_program() -> None:
    answer = (diff("SCALE = 1.0", "SCALE = 2.5")
              + diff("    return x * SCALE", "    return x * SCALE + 1"))
    child = accepted(apply_answer(TWO_BLOCKS, answer, "diff"), TWO_BLOCKS)
    assert body(child, 0) == "SCALE = 2.5\n" and body(child, 1) == "    return x * SCALE + 1\n"


def test_diff_uses_the_occurrence_inside_the_block_when_the_text_also_appears_outside() -> None:
    code = "x = 1\n# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\nprint(x)\n"
    child = accepted(apply_answer(code, diff("x = 1", "x = 2"), "diff"), code)
    assert child == "x = 1\n# EVOLVE-BLOCK-START\nx = 2\n# EVOLVE-BLOCK-END\nprint(x)\n"


@pytest.mark.parametrize("marks", [5, 6, 9])
def test_diff_markers_of_five_to_nine_characters_inside_fences_are_read(marks: int) -> None:
    answer = "```diff\n" + diff("        total += i", "        total -= i", marks) + "```\n"
    assert run(accepted(apply_answer(PARENT, answer, "diff"))) == -45


def test_diff_parts_wrapped_in_their_own_fences_are_unwrapped() -> None:
    answer = ("<<<<<<< SEARCH\n```python\n        total += i\n```\n=======\n```python\n"
              "        total += i * i\n```\n>>>>>>> REPLACE\n")
    assert run(accepted(apply_answer(PARENT, answer, "diff"))) == 285


def test_diff_with_an_empty_replace_deletes_the_lines_cleanly() -> None:
    code = "# EVOLVE-BLOCK-START\na = 1\nb = 2\nc = 3\n# EVOLVE-BLOCK-END\n"
    child = accepted(apply_answer(code, diff("b = 2", ""), "diff"), code)
    assert child == "# EVOLVE-BLOCK-START\na = 1\nc = 3\n# EVOLVE-BLOCK-END\n"


def test_diff_block_without_its_replace_marker_is_rejected() -> None:
    answer = "<<<<<<< SEARCH\n        total += i\n=======\n        total -= i\n"
    result = apply_answer(PARENT, answer, "diff")
    assert result.code is None and "not closed" in result.rejection


def test_diff_block_without_a_divider_is_rejected() -> None:
    answer = "<<<<<<< SEARCH\n        total += i\n>>>>>>> REPLACE\n"
    result = apply_answer(PARENT, answer, "diff")
    assert result.code is None and "=======" in result.rejection


def test_diff_that_adds_an_evolve_block_marker_is_rejected() -> None:
    answer = diff("        total += i", "        total += i\n    # EVOLVE-BLOCK-END")
    result = apply_answer(PARENT, answer, "diff")
    assert result.code is None and "marker" in result.rejection


def test_diff_answer_with_only_a_code_block_falls_back_to_a_rewrite() -> None:
    answer = "Here is a faster version:\n```python\ntotal = n * (n - 1) // 2\n```\n"
    result = apply_answer(PARENT, answer, "diff")
    assert result.format_used == "rewrite" and run(accepted(result)) == 45


def test_diff_answer_with_neither_blocks_nor_code_is_rejected() -> None:
    result = apply_answer(PARENT, "I would use the closed form n(n-1)/2.", "diff")
    assert result.code is None and "no SEARCH/REPLACE blocks" in result.rejection


def test_diff_that_changes_nothing_gives_an_unchanged_child() -> None:
    result = apply_answer(PARENT, diff("        total += i", "        total += i  # same"), "diff")
    assert result.code is not None and result.code != PARENT and not result.changed
