"""Repairs of an answer's form, never of its code: what a weak model gets wrong around the code.

`readings` yields the code of an answer as repaired readings, least repaired first, each naming
the repairs it took. apply.py tries them only when the answer as written gives no child, and
keeps the first that gives one; a reading whose code does not compile is rejected as any answer
is. A repair removes or moves text (prose, fence lines, indentation, the lines cut at
max_tokens) or picks another of the answer's code blocks; it never adds or changes code.
"""

from __future__ import annotations

import keyword
import re
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from service.edits.closable import CODE, Lexer, feed
from service.edits.common import FENCE, PYTHON_TAGS

REPAIRS: dict[str, str] = {
    "fence": "a missing, doubled or unclosed ``` fence line",
    "strip_prose": "sentences or markdown lines before, between or after the code lines",
    "dedent": "the code's first lines indented deeper than the rest",
    "drop_cut_line": "the unfinished last lines of an answer cut at max_tokens",
    "other_block": "another of the answer's code blocks (the longest one gave no child)",
    "whole_file": "a diff answer holding the whole program instead, read as a rewrite",
}
MAX_CUT_LINES = 40  # drop_cut_line takes back at most this many lines
_WORDS = re.compile(r"[A-Za-z][a-z'’]*,?\s+[A-Za-z][a-z'’]*,?\s+[A-Za-z(`][\w'’`]*")
_MARKDOWN = re.compile(r"^(?:[-*+]\s+\S|\d+[.)]\s+[A-Za-z`*]|\*\*|>\s)")
_CLOSERS = re.compile(r"^(?:[)\]}]|else\b|elif\b|except\b|finally\b|case\b)")
_IN_CODE = Lexer(mode=CODE)  # the lexer inside a code block, nothing open


@dataclass(frozen=True)
class Reading:
    """The code of an answer, read after the named repairs."""

    code: str
    repairs: tuple[str, ...]

    def fenced(self) -> str:
        """Returns the code as a one-block answer, for the as-written reader."""
        return f"```python\n{self.code}\n```"


@dataclass
class _Block:
    """One code block of an answer: its lines, the repairs finding it took, whether the answer
    ended inside it."""

    lines: list[str]
    fixes: tuple[str, ...] = ()  # the repairs its reading took: "fence", "strip_prose"
    open_at_end: bool = False
    foreign: bool = False  # fenced as another language (```bash, ```text): never read as code


def readings(answer: str, truncated: bool) -> Iterator[Reading]:
    """Yields repaired readings of the answer's code: the longest block first, then the others;
    per block, as fenced, then without prose, dedented, and (cut answers) without the cut lines."""
    blocks = code_blocks(answer.replace("\r\n", "\n"))
    order = sorted(range(len(blocks)), key=lambda i: -len("\n".join(blocks[i].lines)))
    for rank, index in enumerate(order):
        block = blocks[index]
        base = (("other_block",) if rank else ()) + block.fixes
        yield from _block_readings(block, base, truncated)


def _block_readings(block: _Block, base: tuple[str, ...], truncated: bool) -> Iterator[Reading]:
    """Yields one block's readings, each repair added on the previous reading when it changes it.
    A block the answer was cut in is read only without its cut lines."""
    code = "\n".join(block.lines)
    stages = [Reading(code, base)]
    for name, fix in (("strip_prose", strip_prose), ("dedent", dedent_head)):
        fixed = fix(stages[-1].code)
        if fixed != stages[-1].code:
            stages.append(Reading(fixed, stages[-1].repairs + (name,)))
    if not (truncated and block.open_at_end):
        yield from stages
        return
    seen = set()
    for stage in stages:
        for cut in cut_prefixes(stage.code):
            if cut not in seen:
                seen.add(cut)
                yield Reading(cut, stage.repairs + ("drop_cut_line",))


def code_blocks(answer: str) -> list[_Block]:
    """Returns the answer's Python code blocks, mending doubled, unclosed and missing fences.

    An answer with no fence line is one block, its prose left out. Text before a first fence
    that closes (a bare ``` followed by no code) is a block whose opening fence is missing.
    """
    lines = answer.split("\n")
    if not any(FENCE.match(line) for line in lines):
        code = strip_prose(answer)  # no fence at all: the code is what is not prose
        fixes = ("fence",) + (("strip_prose",) if code != answer.strip("\n") else ())
        return [_Block(code.split("\n"), fixes, open_at_end=True)] if code.strip() else []
    blocks: list[_Block] = []
    head = _missing_opener(lines)
    if head:
        blocks.append(_Block(lines[:head], ("fence",)))
        lines = lines[head + 1:]
    lang: str | None = None
    for line in lines:
        match = FENCE.match(line)
        if lang is None:
            if match:
                lang = match.group(1).lower()
                blocks.append(_Block([], open_at_end=True, foreign=lang not in PYTHON_TAGS))
        elif match and not match.group(1):
            blocks[-1].open_at_end, lang = False, None
        elif match:  # an opening fence inside a block: doubled, or the last block never closed
            blocks[-1].fixes = ("fence",)
            if any(x.strip() for x in blocks[-1].lines):
                blocks[-1].open_at_end, lang = False, match.group(1).lower()
                blocks.append(_Block([], ("fence",), open_at_end=True,
                                     foreign=lang not in PYTHON_TAGS))
        else:
            blocks[-1].lines.append(line)
    return [b for b in blocks if not b.foreign and any(x.strip() for x in b.lines)]


def _missing_opener(lines: list[str]) -> int:
    """Returns the index of a first fence line that closes code it never opened, else 0."""
    first = next(i for i, line in enumerate(lines) if FENCE.match(line))
    match = FENCE.match(lines[first])
    if first == 0 or match is None or match.group(1):
        return 0
    before = [x for x in lines[:first] if x.strip()]
    after = [x for x in lines[first + 1:] if x.strip()]
    code_like = sum(not is_prose(x) for x in before)
    opens_code = bool(after) and not is_prose(after[0]) and not FENCE.match(after[0])
    return first if code_like and not opens_code else 0


def is_prose(line: str) -> bool:
    """Returns True for a line of sentences or markdown that is not Python (nor a comment)."""
    text = line.strip()
    if not text or text.startswith(("#", "```")):
        return False
    if _MARKDOWN.match(text) and not _compiles(text):
        return True
    word = re.match(r"[A-Za-z_]\w*", text)
    if word is None or keyword.iskeyword(word.group(0)) or _compiles(text):
        return False
    if text.endswith(":") and _compiles(text + "\n    pass"):
        return False
    return bool(_WORDS.match(text)) or (text.endswith(":") and text[0].isupper())


def strip_prose(code: str) -> str:
    """Returns code without its prose lines at column 0 outside brackets and strings (and the
    blank lines that only surrounded them at either end). Brackets and strings are followed by
    the lexer of the code guard (service/edits/closable.py)."""
    kept, state = [], _IN_CODE
    for line in code.split("\n"):
        if state.closable() and line[:1] not in (" ", "\t") and is_prose(line):
            continue
        kept.append(line)
        after = feed(state, line + "\n")  # None: a line it cannot follow; start again after it
        state = after if after is not None and after.mode == CODE else _IN_CODE
    return "\n".join(kept).strip("\n")


def dedent_head(code: str) -> str:
    """Returns code whose first significant lines, indented deeper than every later line, are
    moved out to the indentation of the rest (the model kept the indent of where it copied from).
    Code indented as a whole is dedented by the reader already."""
    lines = textwrap.dedent(code).split("\n")
    sig = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if len(sig) < 2:
        return code
    widths = [_width(lines[i]) for i in sig]
    rest = min(widths[1:])
    head = next((k for k in range(1, len(sig)) if widths[k] == rest), len(sig))
    if widths[0] <= rest or any(lines[sig[k]].rstrip().endswith(":") for k in range(head)):
        return code
    shift = widths[0] - rest
    out = [line[min(shift, _width(line)):] if i <= sig[head - 1] else line
           for i, line in enumerate(lines)]
    return "\n".join(out)


def cut_prefixes(code: str) -> Iterator[str]:
    """Yields code without its last, unfinished line, then without ever more of the lines of the
    last top-level statement (where the cut happened), longest first."""
    lines = code.rstrip("\n").split("\n")
    start = max((i for i, line in enumerate(lines)
                 if line.strip() and _width(line) == 0 and not line.startswith("#")
                 and not _CLOSERS.match(line)), default=0)
    for end in range(len(lines) - 1, max(start, len(lines) - 1 - MAX_CUT_LINES) - 1, -1):
        prefix = "\n".join(lines[:end]).rstrip()
        if prefix.strip():
            yield prefix


def _compiles(text: str) -> bool:
    """Returns True when text compiles as Python on its own."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, "<line>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _width(line: str) -> int:
    """Returns the width of a line's indentation."""
    return len(line) - len(line.lstrip())
