"""Which prefixes of a rewrite answer can still become code that compiles: the rule a backend
decoding in this process follows to keep an answer's code closable (service/llm/token_guard.py).

A weak model loses most of its answers to brackets: a `)` where a `]` is open, a ``` fence or the
end of the answer while a bracket or a string is still open. `feed` follows the answer's text and
returns None, inside its ```python block, at the first character that makes such an error: a
closing bracket that matches no open one, a newline inside a one-line string, a backtick outside a
string or comment except the closing fence, a fence line inside a string, the closing fence while
a bracket is open; `Lexer.closable` says whether the answer may end. Nothing else is constrained,
nothing is added to an answer, and the code is checked as written afterwards: the rule only takes
away choices that could never compile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from service.edits.closable_grammar import python_block_grammar
from service.edits.common import FENCE, PYTHON_TAGS

PROSE, CODE, CLOSING = "prose", "code", "closing"  # outside code, in a block, its closing fence
OTHER = "other"  # in a block of another language (```bash): unguarded until its closing fence
KEY_DEPTH = 8  # masks are cached per state with the bracket stack cut to its top KEY_DEPTH
SPECIAL = "()[]{}'\"#\\`\n"  # feed bans no text inside the block that holds none of these
_PAIRS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class Lexer:
    """Where the answer is: mode, open brackets, open string, comment, and what the quotes and the
    line start need to know."""

    mode: str = PROSE
    line: str = ""  # prose: the line so far (a fence opens the code block)
    stack: str = ""  # code: the open brackets, innermost last
    deep: bool = False  # a cache key's stack was cut: closers below it are not checked
    quote: str = ""  # the open string's quote: ', ", ''' or """
    empty: bool = False  # the one-line string just opened holds nothing yet
    pair: str = ""  # the quote of an empty string that just closed ('' then ' opens ''')
    run: int = 0  # quote characters in a row inside a triple-quoted string
    escape: bool = False  # the last character was a backslash inside a string
    comment: bool = False
    blank: bool = True  # the line so far is blank (a backtick there starts the closing fence)

    def closable(self) -> bool:
        """Returns True when the answer may end here: not inside a bracket or a string."""
        return self.mode != CODE or not (self.stack or self.quote)

    def key(self) -> Lexer:
        """Returns the state the token masks are cached under (the stack cut to its top)."""
        if len(self.stack) <= KEY_DEPTH:
            return self
        return replace(self, stack=self.stack[-KEY_DEPTH:], deep=True)


def step(state: Lexer, ch: str) -> Lexer | None:
    """Returns the state after one more character, or None when the code can no longer compile."""
    if state.mode == CLOSING:  # the rest of the closing fence's line, then prose again
        return Lexer() if ch == "\n" else state
    if state.mode in (PROSE, OTHER):
        if ch != "\n":
            return replace(state, line=(state.line + ch)[:40])
        match = FENCE.match(state.line)
        if match is None:
            return replace(state, line="")
        if state.mode == OTHER:
            return Lexer()
        return Lexer(mode=CODE if match.group(1).lower() in PYTHON_TAGS else OTHER)
    blank = ch == "\n" or (state.blank and ch in " \t")
    if state.comment:
        return replace(state, comment=ch != "\n", blank=blank)
    if state.quote:
        return _in_string(state, ch, blank)
    return _in_code(state, ch, blank)


def _in_string(state: Lexer, ch: str, blank: bool) -> Lexer | None:
    """Returns the state after a character inside a string."""
    if state.escape:
        return replace(state, escape=False, empty=False, run=0, blank=blank)
    if (ch == "\n" and len(state.quote) == 1) or (ch == "`" and state.blank):
        return None  # a one-line string across lines; a fence line inside a string
    if ch == "\\":
        return replace(state, escape=True, empty=False, run=0, blank=False)
    if ch != state.quote[0]:
        return replace(state, empty=False, run=0, blank=blank)
    if len(state.quote) == 1:
        return replace(state, quote="", pair=ch if state.empty else "", empty=False, blank=False)
    if state.run == 2:
        return replace(state, quote="", run=0, blank=False)
    return replace(state, run=state.run + 1, blank=False)


def _in_code(state: Lexer, ch: str, blank: bool) -> Lexer | None:
    """Returns the state after a character of code outside strings and comments."""
    if ch in "'\"":
        if state.pair == ch:
            return replace(state, quote=ch * 3, pair="", run=0, blank=False)
        return replace(state, quote=ch, empty=True, pair="", blank=False)
    if ch == "`":
        # The closing fence, on a line of its own with nothing open; anywhere else not Python.
        return Lexer(mode=CLOSING) if state.blank and not (state.stack or state.deep) else None
    state = replace(state, pair="", blank=blank)
    if ch == "#":
        return replace(state, comment=True)
    if ch in "([{":
        return replace(state, stack=state.stack + ch)
    if ch in _PAIRS:
        if not state.stack:
            return state if state.deep else None
        return replace(state, stack=state.stack[:-1]) if state.stack[-1] == _PAIRS[ch] else None
    return state


def feed(state: Lexer, text: str) -> Lexer | None:
    """Returns the state after text, or None when text makes the code uncompilable."""
    for ch in text:
        state = step(state, ch)
        if state is None:
            return None
    return state


class PythonBlockRule:
    """The decoding rule of a rewrite answer (a service.llm.base.DecodingRule): the text of its
    ```python block must stay closable; prose around it is free."""

    name = "python_block"
    special = SPECIAL
    grammar = python_block_grammar()  # the same rule for a remote server (agreement: tests)

    def start(self) -> Lexer:
        """Returns the state before the answer's first character."""
        return Lexer()

    def feed(self, state: Lexer, text: str) -> Lexer | None:
        """Returns the state after text, or None when text makes the code uncompilable."""
        return feed(state, text)

    def guarded(self, state: Lexer) -> bool:
        """Returns True inside the code block, where tokens may be banned."""
        return state.mode == CODE

    def may_end(self, state: Lexer) -> bool:
        """Returns True when the answer may end here."""
        return state.closable()

    def key(self, state: Lexer) -> Lexer:
        """Returns the state the masks are cached under."""
        return state.key()


PYTHON_BLOCK = PythonBlockRule()
