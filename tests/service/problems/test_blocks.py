"""service.problems.blocks: the one EVOLVE-BLOCK parser and the fallback each reader picks."""

from __future__ import annotations

import pytest

from service.problems.blocks import (
    MarkerError,
    block_text,
    blocks_or_whole,
    evolve_blocks,
    lenient_blocks,
)

TWO = ("a\n# EVOLVE-BLOCK-START\nb\n# EVOLVE-BLOCK-END\n"
       "c\n# EVOLVE-BLOCK-START\nd\n# EVOLVE-BLOCK-END\n")
UNCLOSED = "a\n# EVOLVE-BLOCK-START\nb\n"
PLAIN = "def f():\n    return 1\n"


def test_evolve_blocks_span_the_inner_lines() -> None:
    code = "a\n# EVOLVE-BLOCK-START\nb\nc\n# EVOLVE-BLOCK-END\nd\n# EVOLVE-BLOCK-START\ne\n" \
           "# EVOLVE-BLOCK-END\n"
    assert [code[s:e] for s, e in evolve_blocks(code)] == ["b\nc\n", "e\n"]


def test_a_block_body_ends_before_the_indentation_of_its_end_marker() -> None:
    code = "def f():\n    # EVOLVE-BLOCK-START\n    x = 1\n    # EVOLVE-BLOCK-END\n    return x\n"
    [(start, end)] = evolve_blocks(code)
    assert code[start:end] == "    x = 1\n"


@pytest.mark.parametrize(("code", "where"), [
    (UNCLOSED, "offset 2"),  # START without END
    ("x\n# EVOLVE-BLOCK-START", "offset 2"),  # START on the last line: no body at all
    ("# EVOLVE-BLOCK-START # EVOLVE-BLOCK-END\nx\n", "offset 0"),  # END before the body begins
    (TWO + UNCLOSED, f"offset {len(TWO) + 2}"),  # the second of two STARTs is unclosed
])
def test_strict_reader_raises_marker_error_naming_where(code: str, where: str) -> None:
    with pytest.raises(MarkerError, match=f"'# EVOLVE-BLOCK-START' at {where} has no matching"):
        evolve_blocks(code)
    assert issubclass(MarkerError, ValueError)  # callers that catch ValueError see it too


def test_strict_reader_finds_no_blocks_without_a_start_marker() -> None:
    assert evolve_blocks(PLAIN) == []
    assert evolve_blocks("x = 1\n# EVOLVE-BLOCK-END\n") == []  # a stray END is not a block


def test_or_whole_reader_takes_a_program_without_markers_as_one_block() -> None:
    assert blocks_or_whole(PLAIN) == [(0, len(PLAIN))]
    assert blocks_or_whole("") == [(0, 0)]
    assert blocks_or_whole(TWO) == evolve_blocks(TWO)
    with pytest.raises(MarkerError):
        blocks_or_whole(UNCLOSED)  # broken markers are not "no markers"


def test_lenient_reader_returns_no_blocks_for_broken_markers() -> None:
    assert lenient_blocks(UNCLOSED) == []
    assert lenient_blocks(PLAIN) == []
    assert lenient_blocks(TWO) == evolve_blocks(TWO)


def test_block_text_joins_the_bodies_with_the_separator() -> None:
    assert block_text(TWO) == "b\n\nd\n"
    assert block_text(TWO, "# ...\n") == "b\n# ...\nd\n"
    assert block_text(TWO, "") == "b\nd\n"


def test_block_text_falls_back_to_the_whole_code() -> None:
    assert block_text(PLAIN) == PLAIN  # no markers
    assert block_text(UNCLOSED, "# ...\n") == UNCLOSED  # broken markers: shown whole
    empty = "# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n"
    assert evolve_blocks(empty) == [(21, 21)] and block_text(empty) == ""  # an empty block is one
