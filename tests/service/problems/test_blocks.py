"""service.problems.blocks: the one EVOLVE-BLOCK parser and the fallback each reader picks."""

from __future__ import annotations

from service.problems.blocks import evolve_blocks


def test_evolve_blocks_span_the_inner_lines() -> None:
    code = "a\n# EVOLVE-BLOCK-START\nb\nc\n# EVOLVE-BLOCK-END\nd\n# EVOLVE-BLOCK-START\ne\n" \
           "# EVOLVE-BLOCK-END\n"
    assert [code[s:e] for s, e in evolve_blocks(code)] == ["b\nc\n", "e\n"]
