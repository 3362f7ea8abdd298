"""service.edits.apply: LLM answers (diffs, rewrites) become child programs or reasoned rejections."""

from __future__ import annotations

import pytest

from service.edits.apply import EditResult, apply_answer, choose_format, code_hash
from service.problems.blocks import evolve_blocks

PARENT = '''"""Sum of the first n integers."""
import math


def solve(n):
    total = 0
    # EVOLVE-BLOCK-START
    for i in range(n):
        total += i
    # EVOLVE-BLOCK-END
    return total


if __name__ == "__main__":
    print(solve(10))
'''

TWO_BLOCKS = '''import math

# EVOLVE-BLOCK-START
SCALE = 1.0
# EVOLVE-BLOCK-END


def f(x):
    # EVOLVE-BLOCK-START
    return x * SCALE
    # EVOLVE-BLOCK-END
'''

MODULE_LEVEL = '''import math

# EVOLVE-BLOCK-START
def f(x):
    return x + 1
# EVOLVE-BLOCK-END

print(f(1))
'''


def diff(search: str, replace: str, marks: int = 7) -> str:
    return (f"{'<' * marks} SEARCH\n{search}\n{'=' * marks}\n{replace}\n{'>' * marks} REPLACE\n")


def outside(code: str) -> list[str]:
    """Returns the code outside the EVOLVE-BLOCK bodies, markers included."""
    pieces, pos = [], 0
    for start, end in evolve_blocks(code):
        pieces.append(code[pos:start])
        pos = end
    return pieces + [code[pos:]]


def body(code: str, index: int = 0) -> str:
    start, end = evolve_blocks(code)[index]
    return code[start:end]


def run(code: str, n: int = 10) -> object:
    scope: dict = {"__name__": "child"}
    exec(compile(code, "program.py", "exec"), scope)  # noqa: S102 - the tests' own fixtures
    return scope["solve"](n)


def accepted(result: EditResult, parent: str = PARENT) -> str:
    assert result.rejection is None, result.rejection
    assert result.code is not None and result.ok
    assert outside(result.code) == outside(parent), "code outside the EVOLVE-BLOCKs changed"
    return result.code


# --- diff ------------------------------------------------------------------------------------


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


# --- rewrite ---------------------------------------------------------------------------------


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


# --- both formats ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["diff", "rewrite"])
def test_truncated_answer_is_rejected_even_when_its_code_looks_extractable(fmt: str) -> None:
    answer = "```python\ntotal = n * (n - 1) // 2\n"  # unclosed fence: the model hit max_tokens
    result = apply_answer(PARENT, answer, fmt, truncated=True)
    assert result.code is None and result.format_used is None
    assert "cut off at max_tokens" in result.rejection
    assert apply_answer(PARENT, answer, fmt).code is not None  # the same text, finished, is fine


def test_truncated_rewrite_keeps_a_code_block_that_closed_before_the_cut() -> None:
    answer = "```python\ntotal = n * (n - 1) // 2\n```\nThis works because the sum of the fir"
    result = apply_answer(PARENT, answer, "rewrite", truncated=True)
    assert result.code is not None and "n * (n - 1) // 2" in result.code
    cut_in_second = answer + "\n```python\ntotal = 0\n"
    assert "n * (n - 1)" in apply_answer(PARENT, cut_in_second, "rewrite", truncated=True).code
    assert apply_answer(PARENT, answer, "diff", truncated=True).code is None


@pytest.mark.parametrize("fmt,answer", [
    ("diff", diff("        total += i", "        total += (i")),
    ("rewrite", "```python\nfor i in range(n):\ntotal += i\n```"),
])
def test_child_that_does_not_compile_is_rejected_with_the_line(fmt: str, answer: str) -> None:
    result = apply_answer(PARENT, answer, fmt)
    assert result.code is None
    assert result.rejection.startswith("SyntaxError:") and " line 9" in result.rejection


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="diff"):
        apply_answer(PARENT, "x", "patch")  # type: ignore[arg-type]


# --- code_hash / choose_format ---------------------------------------------------------------


def test_code_hash_is_equal_for_reformatted_code_and_different_for_real_changes() -> None:
    a = "def f(x):\n    return x+1\n"
    b = "# a comment\n\ndef f( x ):\n\n    return (x + 1)  # trailing\n"
    assert code_hash(a) == code_hash(b)
    assert code_hash(a) != code_hash("def f(x):\n    return x + 2\n")
    assert len(code_hash(a)) == 64


def test_code_hash_of_code_that_does_not_parse_collapses_whitespace() -> None:
    assert code_hash("def f(:\n  pass") == code_hash("def f(:   pass")
    assert code_hash("def f(:\n  pass") != code_hash("def g(:\n  pass")


@pytest.mark.parametrize("setting,small,expected", [
    ("auto", True, "rewrite"), ("auto", False, "diff"), ("diff", True, "diff"),
    ("rewrite", False, "rewrite"),
])
def test_choose_format_prefers_rewrites_for_small_models(setting: str, small: bool,
                                                          expected: str) -> None:
    assert choose_format(setting, small) == expected


def test_choose_format_rejects_unknown_settings() -> None:
    with pytest.raises(ValueError, match="auto"):
        choose_format("patch", False)


def test_answer_with_windows_line_endings_is_read_like_any_other() -> None:
    answer = diff("        total += i", "        total += 2 * i").replace("\n", "\r\n")
    assert run(accepted(apply_answer(PARENT, answer, "diff"))) == 90
    rewrite = "```python\r\ntotal = 7\r\n```\r\n"
    assert run(accepted(apply_answer(PARENT, rewrite, "rewrite"))) == 7


def test_code_blocks_in_other_languages_are_not_taken_as_the_program() -> None:
    answer = "Install it first:\n```bash\npip install numpy\n```\n"
    for fmt in ("diff", "rewrite"):
        result = apply_answer(PARENT, answer, fmt)  # type: ignore[arg-type]
        assert result.code is None and "no " in result.rejection
