"""Which prefixes of a rewrite answer's code block can still compile."""

from __future__ import annotations

import pytest

from service.edits.closable import CLOSING, CODE, KEY_DEPTH, OTHER, PROSE, SPECIAL, Lexer, feed

OPEN = "Here is the program:\n```python\n"
PLAIN = "abc 12.5e3 + foo.bar * ~-=<>!@$%^&|;:,./?"


def state(text: str) -> Lexer | None:
    """Returns the lexer after text, from the start of an answer."""
    return feed(Lexer(), text)


@pytest.mark.parametrize("code", [
    "x = [1, (2, {3: 4})]\n",
    "s = 'a(' + \"b]\" + '''c\nd)''' + \"\"\"\n\"\"\"\n",
    "t = ''  # an empty string, then a comment ) ] `\n",
    "u = 'it\\'s' + \"a\\\"b\" + 'line \\\n next'\n",
    "v = f'{w}' + r'\\d'\n",
    "def f(a,\n      b):\n    return (a\n            + b)\n",
])
def test_code_that_compiles_is_never_banned(code):
    compile(code, "<test>", "exec")
    after = state(OPEN + code)
    assert after is not None and after.mode == CODE and after.closable()


@pytest.mark.parametrize("code", [
    "x = [1, 2)\n",  # a closer that matches another bracket
    "y = 3)\n",  # a closer with nothing open
    "s = 'abc\n",  # a one-line string across lines
    "z = `x`\n",  # a backtick in code
    "w = (1,\n```",  # the closing fence inside a bracket
    "q = '''a\n```",  # a fence line inside a string
])
def test_text_that_cannot_compile_is_banned(code):
    assert state(OPEN + code) is None


def test_the_rule_starts_at_a_python_fence_and_stops_at_its_closing_fence():
    assert state("Some prose ) ] with `ticks`\n").mode == PROSE
    assert state("```bash\nls )\n").mode == OTHER  # another language's block is not guarded
    assert state("```bash\nls\n```\nThat's it (").mode == PROSE  # nor what follows it
    assert state(OPEN).mode == CODE and state("```\n").mode == CODE  # a bare fence is Python's
    assert state(OPEN + "x = 1\n```").mode == CLOSING
    after = state(OPEN + "x = 1\n```\nThat's all ) ] `.")
    assert after is not None and after.mode == PROSE
    again = state(OPEN + "x = 1\n```\nAnd a second block:\n```python\ny = (")
    assert again.mode == CODE and again.stack == "("  # each python block of an answer is guarded


def test_the_answer_may_end_only_outside_brackets_and_strings():
    assert not state(OPEN + "x = [1,\n").closable()
    assert not state(OPEN + "s = '''doc\n").closable()
    assert state(OPEN + "x = [1]\n").closable() and state("prose (").closable()


def test_a_deep_stack_caches_under_its_top_and_still_checks_what_it_holds():
    deep = state(OPEN + "x = " + "(" * (KEY_DEPTH + 3) + "[")
    key = deep.key()
    assert len(key.stack) == KEY_DEPTH and key.deep
    assert feed(key, ")") is None and feed(key, "])") is not None
    assert feed(key, "]" + ")" * (KEY_DEPTH + 3)) is not None  # below the cut: not checked


def test_text_without_a_special_character_is_never_refused_inside_the_block():
    assert not set(SPECIAL) & set(PLAIN)
    for before in ("x = (", "s = 'a", "t = '''a", "# note", "y = [1,\n"):
        inside = state(OPEN + before)
        assert inside is not None and inside.mode == CODE
        assert feed(inside, PLAIN) is not None
