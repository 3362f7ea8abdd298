"""Prompts for programs that are folders: each file under its path, files without EVOLVE-BLOCKs
as signatures, the file to name in diffs, one target file per rewrite."""

from __future__ import annotations

import dataclasses

from evaluators import tree
from service.evolution.program_text import editable, evolving, file_blocks, shown, signatures
from service.evolution.prompts import (
    ProgramView,
    PromptContext,
    asked_format,
    asked_target,
    build_prompt,
    smallest_prompt_tokens,
)
from service.problems.direction import Direction

SUPPORT = ('"""Shared helpers."""\nimport math\n\nLIMIT = 10\n\n\ndef helper(x):\n'
           '    """Returns x squared, capped."""\n    return min(LIMIT, x * x)\n\n\n'
           "class Box:\n    def size(self):\n        return 3\n")
ORDER = "# EVOLVE-BLOCK-START\ndef order(xs):\n    return sorted(xs)\n# EVOLVE-BLOCK-END\n"
PLACE = "from util import helper\n\n# EVOLVE-BLOCK-START\ndef place(x):\n    return helper(x)\n" \
        "# EVOLVE-BLOCK-END\n"
CODE = tree.join({"order.py": ORDER, "place.py": PLACE, "util.py": SUPPORT})


def ctx(fmt: str, **extra: object) -> PromptContext:
    return PromptContext(problem_name="pack", description="Pack items.", score_metric="score",
                         direction=Direction.MAXIMIZE, fmt=fmt,  # type: ignore[arg-type]
                         parent=ProgramView(CODE, 0.5), **extra)


def count(text: str) -> int:
    return len(text) // 4


def test_a_diff_prompt_shows_each_file_under_its_path_and_support_files_as_signatures() -> None:
    messages = build_prompt(ctx("diff"), count, 10**9)
    text = messages[-1].content
    for path in ("order.py", "place.py", "util.py"):
        assert f"# ==== file: {path} ====" in text
    assert ORDER in text and PLACE in text
    assert "def helper(x):" in text and '"""Returns x squared, capped."""' in text
    assert "return min(LIMIT, x * x)" not in text and "LIMIT = 10" in text
    assert "def size(self):" in text and "return 3" not in text
    assert "Put the path of the file a block edits on the line before" in text
    assert asked_format(messages) == "diff" and asked_target(messages) is None


def test_the_smallest_layout_keeps_every_files_path() -> None:
    excerpt = shown(CODE, excerpt=True)
    assert all(f"# ==== file: {p} ====" in excerpt for p in ("order.py", "place.py", "util.py"))
    assert smallest_prompt_tokens(ctx("diff"), count) < count(CODE) + 400


def test_a_rewrite_prompt_asks_for_one_file_and_shows_the_others_evolving_code() -> None:
    messages = build_prompt(ctx("rewrite", target="place.py"), count, 10**9)
    text = messages[-1].content
    assert "the code to improve is in place.py." in text
    assert "def order(xs):" in text
    assert "```python\ndef place(x):\n    return helper(x)\n```" in text
    assert asked_format(messages) == "rewrite" and asked_target(messages) == "place.py"


def test_inspirations_show_only_evolving_code_per_file() -> None:
    assert evolving(CODE) == ("# ==== file: order.py ====\ndef order(xs):\n    return sorted(xs)\n"
                              "# ==== file: place.py ====\ndef place(x):\n    return helper(x)\n")
    assert signatures("x = (\n", "bad.py") == "x = (\n"  # unparsable: shown whole
    assert signatures("a b c", "notes.txt") == "a b c"


def test_each_block_of_a_file_of_several_is_a_rewrite_target_of_its_own() -> None:
    two = tree.join({"a.py": ORDER, "b.py": ORDER + "\n\n" + PLACE.split("\n\n", 1)[1]})
    assert editable(two) == ["a.py", "b.py#1", "b.py#2"]
    assert file_blocks(two, "b.py#2") == "def place(x):\n    return helper(x)\n"
    messages = build_prompt(dataclasses.replace(ctx("rewrite", target="b.py#2"),
                                                parent=ProgramView(two, 0.1)), count, 10**9)
    assert asked_target(messages) == "b.py#2"
