"""service.edits.apply: LLM answers (diffs, rewrites) become child programs or argued rejections."""

from __future__ import annotations

import pytest

from service.edits.apply import apply_answer, choose_format
from service.edits.identity import code_hash
from tests.service.edits.parents import PARENT, accepted, diff, run


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
    assert apply_answer(PARENT, answer, "diff", truncated=True, repair=False).code is None
    as_rewrite = apply_answer(PARENT, answer, "diff", truncated=True)  # asked for a diff
    assert "n * (n - 1)" in as_rewrite.code and as_rewrite.repair == "whole_file"


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
