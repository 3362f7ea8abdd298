"""service.edits.repair: answers a weak model wraps badly are read after a named repair of their
form; the code is never changed, and code that still does not compile is rejected."""

from __future__ import annotations

import pytest

from service.edits.apply import apply_answer
from service.edits.repair import cut_prefixes, is_prose
from tests.service.edits.parents import PARENT, accepted, body, diff

CURVE = '''"""Quickstart: change the numbers in curve(x) until it matches a hidden target curve."""


# EVOLVE-BLOCK-START
def curve(x):
    return 0.3 * x * x - 0.7 * x + 0.1
# EVOLVE-BLOCK-END
'''


def repaired(answer: str, repair: str, fmt: str = "rewrite", truncated: bool = False) -> str:
    """Returns the block body of the child the answer makes only once repaired, with that repair."""
    assert apply_answer(CURVE, answer, fmt, truncated, repair=False).code is None
    result = apply_answer(CURVE, answer, fmt, truncated)
    child = accepted(result, CURVE)
    assert result.repair == repair and result.changed
    new = body(child)
    kept = {line.strip() for line in answer.split("\n")}
    assert all(line.strip() in kept for line in new.split("\n") if line.strip()), "a new line"
    return new


def test_prose_after_an_unclosed_fence_is_left_out() -> None:
    answer = ("Here's an improved version:\n```python\ndef curve(x):\n"
              "    return 0.25 * x * x - 0.7 * x\n\nThis version lowers the quadratic term, so the "
              "curve is flatter near zero.")
    assert repaired(answer, "strip_prose") == "def curve(x):\n    return 0.25 * x * x - 0.7 * x\n"


def test_a_line_inside_a_string_is_never_taken_for_prose() -> None:
    answer = ('```python\ndef curve(x):\n    """Flatter near zero.\nThis keeps the curve close '
              'to the target.\n    """\n    return 0.25 * x * x - 0.7 * x\n\nThis version lowers '
              "the quadratic term, so the curve is flatter near zero.")
    new = repaired(answer, "strip_prose")
    assert "\nThis keeps the curve close to the target.\n" in new  # the docstring is unchanged
    assert "This version lowers" not in new


def test_code_with_prose_and_no_fence_at_all_is_read_without_the_prose() -> None:
    answer = ("Sure! Here is the improved code:\ndef curve(x):\n    return 0.1 * x * x - 0.5 * x\n"
              "This should match the target better.")
    assert "0.1 * x * x - 0.5 * x" in repaired(answer, "fence+strip_prose")
    assert is_prose("Sure! Here is the improved code:") and not is_prose("return a if b else c")


def test_code_whose_opening_fence_is_missing_ends_at_its_closing_fence() -> None:
    answer = ("def curve(x):\n    return 0.2 * x * x\n```\n\nThis uses a smaller quadratic term "
              "and drops the linear one.")
    assert repaired(answer, "fence") == "def curve(x):\n    return 0.2 * x * x\n"


def test_a_doubled_opening_fence_is_dropped() -> None:
    answer = "```python\n```python\ndef curve(x):\n    return 0.5 * x\n```"
    assert repaired(answer, "fence") == "def curve(x):\n    return 0.5 * x\n"


def test_first_line_indented_deeper_than_the_rest_is_moved_out() -> None:
    answer = "```python\n    SCALE = 0.4\ndef curve(x):\n    return SCALE * x * x\n```"
    assert repaired(answer, "dedent").startswith("SCALE = 0.4\ndef curve(x):\n")


def test_an_answer_cut_at_max_tokens_loses_its_unfinished_last_statement() -> None:
    answer = ("```python\ndef curve(x):\n    y = 0.35 * x * x\n    return y - 0.7 * x\n\n"
              "def helper(z):\n    return [z, z *")
    new = repaired(answer, "drop_cut_line", truncated=True)
    assert new == "def curve(x):\n    y = 0.35 * x * x\n    return y - 0.7 * x\n"


def test_an_unfenced_answer_cut_at_max_tokens_loses_its_last_line_too() -> None:
    answer = ("def curve(x):\n    return 0.3 * x * x - 0.7 * x + 0.25\n"
              "def helper(y):\n    return y_sc")
    new = repaired(answer, "fence+drop_cut_line", truncated=True)
    assert new == "def curve(x):\n    return 0.3 * x * x - 0.7 * x + 0.25\n"


def test_the_cut_last_line_is_dropped_even_when_it_compiles() -> None:
    cut = "def curve(x):\n    a = 0.3\n    return a * x * x - 0.7"  # "- 0.7 * x + 0.1" was cut
    assert next(cut_prefixes(cut)) == "def curve(x):\n    a = 0.3"
    assert apply_answer(CURVE, "```python\n" + cut, "rewrite", truncated=True).repair == (
        "drop_cut_line")


def test_another_code_block_is_read_when_the_longest_does_not_compile() -> None:
    answer = ("```python\ndef curve(x):\n    return f'n-1: [f'<sub>n</sub> 0.2</sub>1.1, 20: 2.0]'"
              "\n    # a longer first block that does not compile\n```\n\nYou can also write:\n"
              "```python\ndef curve(x):\n    return 0.3 * x * x\n```")
    assert repaired(answer, "other_block") == "def curve(x):\n    return 0.3 * x * x\n"


def test_a_whole_file_where_the_block_was_asked_for_is_named_whole_file() -> None:
    answer = ("```python\n\"\"\"Quickstart.\"\"\"\n\n# EVOLVE-BLOCK-START\ndef curve(x):\n"
              "    return 0.3 * x * x - 0.6 * x\n# EVOLVE-BLOCK-END\n```")
    result = apply_answer(CURVE, answer, "rewrite")
    assert result.repair == "whole_file" and "0.6 * x" in accepted(result, CURVE)
    as_diff = apply_answer(CURVE, "```python\ndef curve(x):\n    return x\n```", "diff")
    assert as_diff.repair == "whole_file" and as_diff.format_used == "rewrite"
    plain = apply_answer(CURVE, "```python\ndef curve(x):\n    return x\n```", "rewrite")
    assert plain.ok and plain.repair is None


def test_a_cut_diff_keeps_its_closed_blocks() -> None:
    answer = (diff("    for i in range(n):\n        total += i", "    total = n * (n - 1) // 2")
              + "<<<<<<< SEARCH\n    return total\n=======\n    return tot")
    assert apply_answer(PARENT, answer, "diff", truncated=True, repair=False).code is None
    result = apply_answer(PARENT, answer, "diff", truncated=True)
    assert "n * (n - 1) // 2" in accepted(result) and result.repair == "drop_cut_line"


def test_a_diff_answer_with_a_wrong_search_is_not_repaired() -> None:
    answer = diff("    for j in range(n):", "    total = 1")
    result = apply_answer(PARENT, answer, "diff")
    assert result.code is None and "SEARCH text not found" in result.rejection


@pytest.mark.parametrize("answer", [
    # prose around code that does not compile, no fence: the compiler's message, not "no code"
    "Here is the new code:\ndef curve(x):\n    return (0.3 * x * x\nThis closes the bracket.",
    # fenced, prose after an unclosed fence, the code itself broken: as written
    "```python\ndef curve(x):\n    return 0.3 * x * x +\n\nThis adds a term to the curve.",
])
def test_a_repaired_answer_that_still_does_not_compile_is_rejected_with_the_compiler_message(
        answer: str) -> None:
    result = apply_answer(CURVE, answer, "rewrite")
    assert result.code is None and result.repair is None
    assert result.rejection.startswith("SyntaxError:") and "line 6" in result.rejection


def test_a_repaired_reading_names_its_repairs_in_the_rejection_when_as_written_had_no_code(
        ) -> None:
    answer = "Here is the new code:\ndef curve(x):\n    return (0.3 * x * x\nThis closes it."
    assert apply_answer(CURVE, answer, "rewrite", repair=False).rejection.startswith(
        "no code block found")
    assert "(read after repairs: fence+strip_prose)" in apply_answer(CURVE, answer,
                                                                     "rewrite").rejection


def test_indented_code_inside_brackets_is_never_taken_for_prose() -> None:
    answer = ("```python\ndef curve(x):\n    terms = [\n0.3 * x * x for the quadratic\n    ]\n"
              "    return sum(terms)\n```")
    result = apply_answer(CURVE, answer, "rewrite")
    assert result.code is None and result.rejection.startswith("SyntaxError:")
