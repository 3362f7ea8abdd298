"""service.evolution.prompts: mutation prompts hold what the model needs, always within the token
budget."""

from __future__ import annotations

import dataclasses

import llama_cpp
import pytest

from service.edits.apply import apply_answer
from service.evolution.program_text import blocks_excerpt
from service.evolution.prompts import (
    MESSAGE_OVERHEAD,
    ProgramView,
    PromptContext,
    PromptTooLong,
    answer_done,
    answer_tokens,
    asked_format,
    block_closed,
    build_prompt,
    format_feedback,
    format_metrics,
    repeating,
)
from service.llm.base import Message
from service.llm.models import default_model_path
from service.problems.direction import Direction

HELPERS = "".join(f"def helper_{i}(x):\n    return x + {i}\n\n\n" for i in range(30))
PARENT = ('"""Sum of the first n integers."""\nimport math\n\n\n' + HELPERS
          + "def solve(n):\n    total = 0\n    # EVOLVE-BLOCK-START\n    for i in range(n):\n"
          "        total += i\n    # EVOLVE-BLOCK-END\n    return total\n\n\n"
          'if __name__ == "__main__":\n    print(solve(10))\n')
BLOCK = ("    # EVOLVE-BLOCK-START\n    for i in range(n):\n        total += i\n"
         "    # EVOLVE-BLOCK-END\n")
SHOWN = {"diff": BLOCK, "rewrite": "for i in range(n):\n    total += i\n"}  # rewrite: body only
STDERR = "\n".join(f"stderr line {i}" for i in range(1, 51))


def approx_tokens(text: str) -> int:
    return len(text) // 4


def program(tag: str) -> str:
    return f"import math\n\n# EVOLVE-BLOCK-START\nvalue = '{tag}'\n# EVOLVE-BLOCK-END\n"


def context(fmt: str = "diff", direction: str = "maximize", **changes: object) -> PromptContext:
    parent = ProgramView(PARENT, 0.5, {"combined_score": 0.5, "runtime_s": 12.3456789},
                         {"feedback": "too slow for n = 10**6 " + "x" * 600, "stderr": STDERR})
    inspirations = [
        ProgramView(program("TOP_GOOD"), 0.9, {"combined_score": 0.9}, {}, "top"),
        ProgramView(program("TOP_BAD"), 0.6, {"combined_score": 0.6}, {}, "top"),
        ProgramView(program("TOP_MID"), 0.7, {}, {}, "top"),
        ProgramView(program("DIVERSE_1"), 0.2, {}, {}, "diverse"),
        ProgramView(program("DIVERSE_2"), None, {}, {}, "diverse"),
    ]
    ctx = PromptContext(problem_name="triangular", description="Return the sum 0 + 1 + ... + n-1.",
                        score_metric="combined_score", direction=Direction(direction), fmt=fmt,  # type: ignore[arg-type]
                        parent=parent, inspirations=inspirations)
    return dataclasses.replace(ctx, **changes)


def size(messages: list[Message], count=approx_tokens) -> int:
    return sum(count(m.content) + MESSAGE_OVERHEAD for m in messages)


def user(messages: list[Message]) -> str:
    assert [m.role for m in messages] == ["system", "user"]
    return messages[1].content


def full_size(ctx: PromptContext) -> int:
    return size(build_prompt(ctx, approx_tokens, 10**9))


def test_diff_prompt_shows_problem_parent_scores_feedback_inspirations_and_the_format() -> None:
    text = user(build_prompt(context(best_known=45.0), approx_tokens, 10**9))
    for expected in ("triangular", "Return the sum", "combined_score", "higher is better",
                     "best known result is 45", PARENT.rstrip("\n"), "runtime_s=12.3457",
                     "too slow for n = 10**6", "stderr line 50", "<<<<<<< SEARCH", "=======",
                     ">>>>>>> REPLACE", "EVOLVE-BLOCK-START"):
        assert expected in text, expected
    for tag in ("TOP_GOOD", "TOP_BAD", "TOP_MID", "DIVERSE_1", "DIVERSE_2"):
        assert f"value = '{tag}'" in text
    assert "12.3456789" not in text and "import math\n\n# EVOLVE" not in text  # blocks only
    assert "none (the program failed or was not scored)" in text  # DIVERSE_2 has no score


def test_a_search_copied_from_the_diff_prompt_applies_to_the_parent() -> None:
    text = user(build_prompt(context(), approx_tokens, 10**9))
    search = text[text.index("    for i in range(n):"):].split("\n")[:2]
    answer = ("<<<<<<< SEARCH\n" + "\n".join(search)
              + "\n=======\n    total = n * (n - 1) // 2\n>>>>>>> REPLACE")
    assert apply_answer(PARENT, answer, "diff").changed


def test_rewrite_prompt_is_short_and_asks_for_one_python_block() -> None:
    ctx = context("rewrite", inspirations=[])
    messages = build_prompt(ctx, approx_tokens, 10**9)
    text = user(messages)
    assert "```python" in text and "one ```python block" in text and SHOWN["rewrite"] in text
    assert "EVOLVE-BLOCK" not in text and "helper_0" not in text and "SEARCH" not in text
    assert "The score is 0.5 (higher is better)" in text and "combined_score" not in text
    assert "too slow" in text
    assert "stderr line 50" in text and "stderr line 46" not in text  # a short tail only
    bare = dataclasses.replace(ctx.parent, artifacts={})
    rewrite = full_size(context("rewrite", inspirations=[], parent=bare)) - approx_tokens(PARENT)
    diff = full_size(context("diff", inspirations=[], parent=bare)) - approx_tokens(PARENT)
    assert rewrite < diff / 2
    assert len(messages[0].content) < 120


@pytest.mark.parametrize("fmt", ["diff", "rewrite"])
def test_minimize_problems_say_lower_is_better(fmt: str) -> None:
    text = user(build_prompt(context(fmt, "minimize"), approx_tokens, 10**9))
    assert "lower is better" in text and "higher is better" not in text
    text = user(build_prompt(context(fmt, "maximize"), approx_tokens, 10**9))
    assert "higher is better" in text and "lower is better" not in text


@pytest.mark.parametrize("fmt", ["diff", "rewrite"])
def test_system_message_overrides_the_default_system_prompt(fmt: str) -> None:
    default = build_prompt(context(fmt), approx_tokens, 10**9)[0].content
    messages = build_prompt(context(fmt, system_message="You write tiny fast code."),
                            approx_tokens, 10**9)
    assert messages[0] == Message("system", "You write tiny fast code.")
    assert default != messages[0].content and len(default) > 20


@pytest.mark.parametrize("fmt", ["diff", "rewrite"])
def test_shrinking_budget_drops_diverse_then_worst_tops_then_feedback_then_code(fmt: str) -> None:
    ctx = context(fmt)
    tops_worst_first = ["TOP_BAD", "TOP_MID", "TOP_GOOD"]
    seen_states = []
    budget = full_size(ctx)
    while True:
        try:
            messages = build_prompt(ctx, approx_tokens, budget)
        except PromptTooLong:
            break
        assert size(messages) <= budget
        text = user(messages)
        assert SHOWN[fmt] in text, "the parent's EVOLVE-BLOCK must never be cut"
        diverse = [f"value = '{t}'" in text for t in ("DIVERSE_1", "DIVERSE_2")]
        tops = [f"value = '{t}'" in text for t in tops_worst_first]
        assert diverse in ([True, True], [True, False], [False, False])  # the last one goes first
        assert tops in ([True] * 3, [False, True, True], [False, False, True], [False] * 3)
        if any(diverse):
            assert all(tops)
        feedback = "too slow" in text
        excerpt = "helper_0" not in text
        state = (sum(diverse), sum(tops), feedback, "x" * 150 in text, excerpt)
        if not seen_states or seen_states[-1] != state:
            seen_states.append(state)
        budget -= 1
    expected = [
        (2, 3, True, True, False), (1, 3, True, True, False), (0, 3, True, True, False),
        (0, 2, True, True, False), (0, 1, True, True, False), (0, 0, True, True, False),
        (0, 0, True, False, False), (0, 0, False, False, False), (0, 0, False, False, True)]
    if fmt == "rewrite":  # the rewrite prompt shows only the block from the start
        expected = [state[:4] + (True,) for state in expected[:-1]]
    assert seen_states == expected


def test_parent_reduced_to_its_blocks_keeps_the_whole_block_and_a_few_lines_around() -> None:
    excerpt = blocks_excerpt(PARENT)
    assert BLOCK in excerpt and "def solve(n):\n    total = 0\n" + BLOCK in excerpt
    assert "    return total\n" in excerpt and "helper_3" not in excerpt
    assert excerpt.count("# ... (code not shown) ...") == 2
    assert len(excerpt) < len(PARENT) / 4


def test_prompt_that_cannot_fit_raises_prompt_too_long_with_the_sizes() -> None:
    ctx = context(description="A very long statement. " * 400)
    with pytest.raises(PromptTooLong) as info:
        build_prompt(ctx, approx_tokens, 1500)
    assert isinstance(info.value, ValueError)
    assert info.value.budget == 1500 and info.value.needed > 1500
    assert "1500" in str(info.value) and str(info.value.needed) in str(info.value)
    assert "description" in str(info.value)


def test_metrics_are_shown_with_at_most_six_significant_digits() -> None:
    text = format_metrics({"a": 0.123456789, "b": 123456789.0, "n": 3, "ok": True, "s": "fast"})
    assert text == "a=0.123457, b=1.23457e+08, n=3, ok=True, s=fast"


def test_feedback_is_truncated_and_logs_keep_their_last_lines() -> None:
    text = format_feedback({"feedback": "y" * 1000, "stderr": STDERR, "empty": "",
                            "extra": {"k": [1, 2]}}, 100)
    lines = text.split("\n")
    assert lines[0] == "- feedback: " + "y" * 100 + "..."
    assert "stderr line 50" in text and "stderr line 30" not in text
    assert '- extra: {"k": [1, 2]}' in text and "empty" not in text
    assert format_feedback({"feedback": "anything"}, 0) == ""


def test_prompt_fits_the_budget_counted_by_the_real_smollm2_tokenizer() -> None:
    vocab = llama_cpp.Llama(str(default_model_path()), vocab_only=True, verbose=False)

    def tokens(text: str) -> int:
        return len(vocab.tokenize(text.encode(), add_bos=False, special=False))

    for fmt in ("diff", "rewrite"):
        ctx = context(fmt)
        full = size(build_prompt(ctx, tokens, 10**9), tokens)
        for budget in (full, full * 3 // 4, full // 2, full // 3):
            messages = build_prompt(ctx, tokens, budget)
            chat = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
            assert len(vocab.tokenize(chat.encode(), add_bos=False, special=True)) <= budget
            assert SHOWN[fmt] in user(messages)
        with pytest.raises(PromptTooLong):
            build_prompt(ctx, tokens, full // 6)


def test_programs_with_broken_markers_are_shown_whole_rather_than_failing() -> None:
    broken = ProgramView("# EVOLVE-BLOCK-START\nvalue = 'BROKEN'\n", 0.8, {}, {}, "top")
    for fmt in ("diff", "rewrite"):
        text = user(build_prompt(context(fmt, inspirations=[broken]), approx_tokens, 10**9))
        assert "value = 'BROKEN'" in text


PARENT_A = "# EVOLVE-BLOCK-START\ndef value():\n    return 3  # idea A\n# EVOLVE-BLOCK-END\n"


PARENT_B = "# EVOLVE-BLOCK-START\ndef value():\n    return 7  # idea B\n# EVOLVE-BLOCK-END\n"


def _ctx(fmt: str, partner: ProgramView | None) -> PromptContext:
    return PromptContext(problem_name="tiny", description="Get close to 10.",
                         score_metric="combined_score", direction=Direction.MAXIMIZE, fmt=fmt,
                         parent=ProgramView(PARENT_A, score=-7.0), partner=partner)


def test_crossover_rewrite_prompt_shows_both_parents_and_asks_to_combine() -> None:
    messages = build_prompt(_ctx("rewrite", ProgramView(PARENT_B, score=-3.0, label="partner")),
                            lambda s: len(s) // 4, 2000)
    user = messages[-1].content
    assert "return 3  # idea A" in user and "return 7  # idea B" in user
    assert "Program A (score -7)" in user and "Program B (score -3)" in user
    assert "combines the best ideas of A and B" in user


def test_crossover_diff_prompt_shows_the_second_parent_as_its_own_section() -> None:
    messages = build_prompt(_ctx("diff", ProgramView(PARENT_B, score=-3.0, label="partner")),
                            lambda s: len(s) // 4, 4000)
    user = messages[-1].content
    assert "return 3  # idea A" in user and "return 7  # idea B" in user
    assert "# Second parent (from another island" in user


def test_without_a_partner_the_prompt_is_the_plain_mutation_prompt() -> None:
    user = build_prompt(_ctx("rewrite", None), lambda s: len(s) // 4, 2000)[-1].content
    assert "Program B" not in user and "idea B" not in user


@pytest.mark.parametrize("fmt", ["diff", "rewrite"])
def test_asked_format_reads_the_format_of_every_layout_of_a_mutation_prompt(fmt: str) -> None:
    ctx = context(fmt)
    layouts: dict[str, str] = {}
    budget = full_size(ctx)
    while True:  # from the full prompt down to the parent's blocks alone
        try:
            messages = build_prompt(ctx, approx_tokens, budget)
        except PromptTooLong:
            break
        layouts[user(messages)] = asked_format(messages)
        budget -= 10
    assert len(layouts) >= 5 and set(layouts.values()) == {fmt}


@pytest.mark.parametrize("fmt", ["diff", "rewrite"])
def test_asked_format_reads_crossover_prompts(fmt: str) -> None:
    messages = build_prompt(_ctx(fmt, ProgramView(PARENT_B, score=-3.0, label="partner")),
                            approx_tokens, 4000)
    assert asked_format(messages) == fmt


def test_asked_format_ignores_a_search_marker_inside_a_program_of_a_rewrite_prompt() -> None:
    tricky = PARENT_A.replace("# idea A", "# was: <<<<<<< SEARCH")
    ctx = dataclasses.replace(_ctx("rewrite", None), parent=ProgramView(tricky, score=-7.0))
    messages = build_prompt(ctx, approx_tokens, 2000)
    assert "<<<<<<< SEARCH" in user(messages) and asked_format(messages) == "rewrite"


def test_asked_format_of_messages_without_a_user_message_is_rewrite() -> None:
    assert asked_format([Message("system", "You write Python.")]) == "rewrite"
    assert asked_format([]) == "rewrite"


def test_asked_format_of_a_rewrite_prompt_whose_feedback_quotes_the_search_marker() -> None:
    parent = ProgramView(PARENT_A, -7.0, {}, {"stderr": "merge conflict:\n<<<<<<< SEARCH\n"})
    ctx = dataclasses.replace(_ctx("rewrite", None), parent=parent)
    assert asked_format(build_prompt(ctx, approx_tokens, 2000)) == "rewrite"


def test_a_rewrite_answer_is_done_once_its_python_block_closes():
    assert block_closed("Here it is:\n```python\ndef f():\n    return 1\n```\n")
    assert not block_closed("Here it is:\n```python\ndef f():\n    return 1\n")
    assert not block_closed("```python\ns = 1\n```text\n")  # a fence with a tag opens nothing
    assert not block_closed("Some prose with ``` inside a line\n")


def test_a_rewrite_answer_that_loops_over_the_same_lines_is_done() -> None:
    loop = "```python\ndef curve(x):\n    return x\n" + "def t():\n    return t() + 0.0\n" * 4
    assert answer_done(loop) and repeating(loop)
    varied = "```python\n" + "".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(6))
    assert not repeating(varied) and not answer_done(varied)
    short = "```python\n" + "    x = 1\n    )\n" * 6  # short lines repeat in real code
    assert not repeating(short.replace("    x = 1\n", ""))
    assert answer_done("```python\nx = 1\n```\n")


def test_a_rewrite_answer_budget_follows_the_code_it_rewrites() -> None:
    small = "# EVOLVE-BLOCK-START\ndef f(x):\n    return x\n# EVOLVE-BLOCK-END\n"
    assert answer_tokens(small, None, approx_tokens, 3.0, 512) == 64  # the floor
    big = "# EVOLVE-BLOCK-START\n" + "x = 1  # a long line of code here\n" * 40 + \
          "# EVOLVE-BLOCK-END\n"
    assert answer_tokens(big, None, approx_tokens, 3.0, 512) == 512  # the ceiling
    middle = "# EVOLVE-BLOCK-START\n" + "x = 1\n" * 20 + "# EVOLVE-BLOCK-END\n"
    assert answer_tokens(middle, None, approx_tokens, 3.0, 512) == 3 * approx_tokens(
        "x = 1\n" * 20) + 32
    assert answer_tokens(small, None, approx_tokens, 0.0, 512) == 512  # factor 0: off
