"""service.edits.rewrite: full-rewrite answers become the new EVOLVE-BLOCK bodies of the parent."""

from __future__ import annotations

import pytest

from service.edits.apply import apply_answer
from tests.service.edits.parents import MODULE_LEVEL, PARENT, TWO_BLOCKS, accepted, body, run


def test_rewrite_without_markers_becomes_the_block_body_at_its_indentation() -> None:
    answer = "```python\ntotal = sum(range(n))\n```"
    result = apply_answer(PARENT, answer, "rewrite")
    child = accepted(result)
    assert body(child) == "    total = sum(range(n))\n"
    assert (result.format_used, result.blocks_applied, result.changed) == ("rewrite", 1, True)
    assert run(child) == 45


def test_rewrite_with_markers_takes_only_the_text_between_them() -> None:
    answer = ("```python\nimport os  # ignored: outside the block\n\ndef solve(n):\n    total = 0\n"
              "    # EVOLVE-BLOCK-START\n    total = n * (n - 1) // 2\n    # EVOLVE-BLOCK-END\n"
              "    return total * 100\n```")
    child = accepted(apply_answer(PARENT, answer, "rewrite"))
    assert body(child) == "    total = n * (n - 1) // 2\n" and "import os" not in child


def test_rewrite_of_the_whole_program_strips_the_repeated_prefix_and_suffix() -> None:
    answer = ('Improved:\n```python\n"""Sum of the first n integers."""\nimport math\n\n'
              "def solve(n):\n    total = 0\n    total = n * (n - 1) // 2\n    return total\n\n"
              'if __name__ == "__main__":\n    print(solve(10))\n```\nThis is O(1).')
    child = accepted(apply_answer(PARENT, answer, "rewrite"))
    assert body(child) == "    total = n * (n - 1) // 2\n"


def test_rewrite_of_the_whole_program_with_changed_helpers_keeps_the_function_body() -> None:
    answer = ("```python\nimport math, os\n\ndef helper():\n    return 2\n\ndef solve(n):\n"
              "    return n * (n - 1) // 2\n\ndef main():\n    print(solve(3))\n```")
    child = accepted(apply_answer(PARENT, answer, "rewrite"))
    assert body(child) == "    return n * (n - 1) // 2\n" and run(child) == 45


def test_rewrite_of_a_module_level_block_keeps_it_at_column_zero() -> None:
    answer = "```py\n    def f(x):\n        return x + 2\n```"
    child = accepted(apply_answer(MODULE_LEVEL, answer, "rewrite"), MODULE_LEVEL)
    assert body(child) == "def f(x):\n    return x + 2\n"


def test_rewrite_with_only_a_start_marker_takes_what_follows_it() -> None:
    answer = "```python\n    # EVOLVE-BLOCK-START\n    total = n * n\n```"
    assert run(accepted(apply_answer(PARENT, answer, "rewrite"))) == 100


def test_rewrite_maps_several_marked_blocks_in_order() -> None:
    answer = ("```python\n# EVOLVE-BLOCK-START\nSCALE = 3.0\n# EVOLVE-BLOCK-END\n"
              "def f(x):\n    # EVOLVE-BLOCK-START\n    return x - SCALE\n"
              "    # EVOLVE-BLOCK-END\n```")
    result = apply_answer(TWO_BLOCKS, answer, "rewrite")
    child = accepted(result, TWO_BLOCKS)
    assert result.blocks_applied == 2
    assert (body(child, 0), body(child, 1)) == ("SCALE = 3.0\n", "    return x - SCALE\n")


def test_rewrite_with_a_different_number_of_blocks_is_rejected() -> None:
    answer = "```python\n# EVOLVE-BLOCK-START\nSCALE = 3.0\n# EVOLVE-BLOCK-END\n```"
    result = apply_answer(TWO_BLOCKS, answer, "rewrite")
    assert result.code is None and "has 1 EVOLVE-BLOCK(s), the program has 2" in result.rejection


def test_rewrite_without_markers_of_a_program_with_several_blocks_is_rejected() -> None:
    result = apply_answer(TWO_BLOCKS, "```python\nSCALE = 3.0\n```", "rewrite")
    assert result.code is None
    assert "2 EVOLVE-BLOCKs" in result.rejection and "marker" in result.rejection


def test_rewrite_takes_the_longest_python_code_block() -> None:
    answer = ("Usage:\n```python\nprint(solve(3))\n```\nCode:\n```python\n"
              "total = 0\nfor i in range(1, n):\n    total += i\n```\n"
              "```text\n" + "x" * 300 + "\n```")
    assert run(accepted(apply_answer(PARENT, answer, "rewrite"))) == 45


def test_rewrite_answer_that_is_plain_code_is_used() -> None:
    result = apply_answer(PARENT, "total = n * (n - 1) // 2\n", "rewrite")
    assert run(accepted(result)) == 45


def test_rewrite_answer_that_is_prose_is_rejected_for_lack_of_a_code_block() -> None:
    result = apply_answer(PARENT, "You could use the closed form, which is faster.", "rewrite")
    assert result.code is None and "no code block found" in result.rejection


@pytest.mark.parametrize("answer", ["", "   \n", "```python\n\n```"])
def test_empty_answers_and_empty_code_blocks_are_rejected(answer: str) -> None:
    result = apply_answer(PARENT, answer, "rewrite")
    assert result.code is None and "empty" in result.rejection


def test_rewrite_that_repeats_the_block_with_other_comments_is_unchanged() -> None:
    answer = "```python\nfor i in range(n):  # loop\n    total += i\n```"
    result = apply_answer(PARENT, answer, "rewrite")
    assert result.code is not None and not result.changed
