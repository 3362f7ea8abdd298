"""Turns an LLM answer (SEARCH/REPLACE diff or full rewrite) into a child program or a rejection."""

from __future__ import annotations

import ast
import hashlib
import re
import textwrap
import warnings
from dataclasses import dataclass
from typing import Literal

from service.problem import BLOCK_END, BLOCK_START, ProblemError, evolve_blocks

Format = Literal["diff", "rewrite"]

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FENCE = re.compile(r"^\s*`{3,}\s*([\w+.-]*)\s*$")
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


@dataclass(frozen=True)
class EditResult:
    """What an answer made: the child code, or why there is none.

    format_used is how the answer was read (a diff answer holding only a code block is read as a
    rewrite); None when it was not read at all (cut off). changed is False when the child is the
    parent up to comments and formatting (same code_hash). blocks_applied counts SEARCH/REPLACE
    blocks (diff) or EVOLVE-BLOCKs rewritten (rewrite); 0 on rejection.
    """

    code: str | None
    rejection: str | None
    format_used: Format | None
    changed: bool = False
    blocks_applied: int = 0

    @property
    def ok(self) -> bool:
        """Returns True when the answer gave a child program."""
        return self.code is not None


class _Reject(Exception):
    """Internal: the answer cannot give a child; the message is the reason."""


@dataclass(frozen=True)
class _Block:
    search: str
    replace: str


def choose_format(answer_format: str, small_model: bool) -> Format:
    """Returns the answer format to ask for ('auto': rewrite for small models, else diff)."""
    if answer_format == "auto":
        return "rewrite" if small_model else "diff"
    if answer_format in ("diff", "rewrite"):
        return answer_format  # type: ignore[return-value]
    raise ValueError(f"answer_format {answer_format!r} is unknown; use 'auto', 'diff' or 'rewrite'")


def code_hash(code: str) -> str:
    """Returns the sha256 of the code's normalised form (comments and formatting do not count)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            norm = ast.unparse(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        norm = " ".join(code.split())
    return hashlib.sha256(norm.encode()).hexdigest()


def apply_answer(parent_code: str, answer: str, fmt: Format, truncated: bool = False) -> EditResult:
    """Returns the child the answer makes of parent_code, or a rejection naming the reason."""
    if fmt not in ("diff", "rewrite"):
        raise ValueError(f"fmt {fmt!r} is unknown; use 'diff' or 'rewrite'")
    if truncated:
        # A rewrite whose code fence closed before the cut is complete code; anything else is not.
        kept = _closed_prefix(answer.replace("\r\n", "\n")) if fmt == "rewrite" else None
        if kept is None:
            return EditResult(None, "answer cut off at max_tokens (finish_reason 'length'); raise "
                              "llm.max_tokens or ask for shorter answers", None)
        answer = kept
    used: Format = fmt
    answer = answer.replace("\r\n", "\n")
    try:
        if not answer.strip():
            raise _Reject("empty answer")
        blocks = _diff_blocks(answer) if fmt == "diff" else []
        if blocks:
            child = _apply_diff(parent_code, blocks)
            count = len(blocks)
        elif fmt == "diff" and _fenced_code(answer) is None:
            raise _Reject("no SEARCH/REPLACE blocks found; answer with '<<<<<<< SEARCH', the old "
                          "lines, '=======', the new lines, '>>>>>>> REPLACE'")
        else:
            used = "rewrite"
            child, count = _rewrite(parent_code, answer, allow_plain=fmt == "rewrite")
        _check_child(parent_code, child)
    except _Reject as reason:
        return EditResult(None, str(reason), used)
    return EditResult(child, None, used, code_hash(child) != code_hash(parent_code), count)


# --- diff -------------------------------------------------------------------------------------


def _diff_blocks(answer: str) -> list[_Block]:
    """Returns the SEARCH/REPLACE blocks of an answer, in order."""
    blocks: list[_Block] = []
    state, search, replace, start = None, [], [], 0
    for number, line in enumerate(answer.splitlines(), 1):
        if state is None:
            if _SEARCH.match(line):
                state, search, replace, start = "search", [], [], number
        elif state == "search":
            if _DIVIDER.match(line):
                state = "replace"
            elif _SEARCH.match(line) or _REPLACE.match(line):
                raise _Reject(f"diff block at answer line {start} has no '=======' line between "
                              "its SEARCH and REPLACE parts")
            else:
                search.append(line)
        elif _REPLACE.match(line):
            blocks.append(_Block("\n".join(_unfence(search)), "\n".join(_unfence(replace))))
            state = None
        else:
            replace.append(line)
    if state is not None:
        raise _Reject(f"diff block at answer line {start} is not closed with '>>>>>>> REPLACE'")
    return blocks


def _unfence(lines: list[str]) -> list[str]:
    """Returns the lines without a ``` fence line at either end (models sometimes wrap parts)."""
    if lines and _FENCE.match(lines[0]):
        lines = lines[1:]
    if lines and _FENCE.match(lines[-1]):
        lines = lines[:-1]
    return lines


def _apply_diff(code: str, blocks: list[_Block]) -> str:
    """Returns code with every block applied in order, each inside an EVOLVE-BLOCK region."""
    for index, block in enumerate(blocks, 1):
        where = f"diff block {index} of {len(blocks)}"
        if not block.search.strip():
            raise _Reject(f"{where}: empty SEARCH part; copy the lines to change from the program")
        if BLOCK_START in block.replace or BLOCK_END in block.replace:
            raise _Reject(f"{where}: REPLACE part holds an EVOLVE-BLOCK marker; markers never "
                          "change")
        code = _apply_block(code, block, where)
    return code


def _apply_block(code: str, block: _Block, where: str) -> str:
    """Returns code with one block applied: exact match first, then a whitespace-tolerant one."""
    regions = _regions(code)
    exact = _exact_hits(code, block.search)
    for start, end in exact:
        if _inside(start, end, regions):
            return code[:start] + block.replace + code[_eat_newline(code, start, end, block):]
    tolerant = _tolerant_hits(code, block.search)
    for start, end, indent, search_indent in tolerant:
        if _inside(start, end, regions):
            return code[:start] + _reindent(block.replace, search_indent, indent) + code[end:]
    hits = exact + [(s, e) for s, e, _, _ in tolerant]
    if hits:
        line = _first_outside_line(code, *hits[0], regions)
        raise _Reject(f"{where}: edit touches code outside EVOLVE-BLOCK at line {line}; change "
                      "only lines between the EVOLVE-BLOCK-START and EVOLVE-BLOCK-END markers")
    first = next(line.strip() for line in block.search.splitlines() if line.strip())
    raise _Reject(f"{where}: SEARCH text not found in the program: {first[:100]!r}; copy the "
                  "lines exactly as they are")


def _exact_hits(code: str, search: str) -> list[tuple[int, int]]:
    """Returns the character spans where search occurs verbatim."""
    hits, pos = [], code.find(search)
    while pos >= 0:
        hits.append((pos, pos + len(search)))
        pos = code.find(search, pos + 1)
    return hits


def _eat_newline(code: str, start: int, end: int, block: _Block) -> int:
    """Returns the end of the replaced span, taking the line break when whole lines are deleted."""
    whole_lines = start == 0 or code[start - 1] == "\n"
    if not block.replace and whole_lines and code[end:end + 1] == "\n":
        return end + 1
    return end


def _tolerant_hits(code: str, search: str) -> list[tuple[int, int, str, str]]:
    """Returns (start, end, code indent, search indent) of whole-line matches that differ only in
    trailing whitespace or a uniform indentation."""
    wanted = search.split("\n")
    while wanted and not wanted[0].strip():
        wanted = wanted[1:]
    while wanted and not wanted[-1].strip():
        wanted = wanted[:-1]
    shape, search_indent = _shape(wanted)
    lines = code.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    hits = []
    for i in range(len(lines) - len(wanted) + 1):
        window, indent = _shape([line.rstrip("\r\n") for line in lines[i:i + len(wanted)]])
        if window == shape:
            hits.append((offsets[i], offsets[i + len(wanted)], indent, search_indent))
    return hits


def _shape(lines: list[str]) -> tuple[list[str], str]:
    """Returns the lines without their common indentation and trailing spaces, and that indent."""
    indents = [line[:len(line) - len(line.lstrip())] for line in lines if line.strip()]
    common = _common_prefix(indents)
    return [line[len(common):].rstrip() if line.strip() else "" for line in lines], common


def _common_prefix(items: list[str]) -> str:
    """Returns the longest common prefix of the strings."""
    if not items:
        return ""
    low, high = min(items), max(items)
    size = 0
    while size < len(low) and low[size] == high[size]:
        size += 1
    return low[:size]


def _reindent(text: str, old: str, new: str) -> str:
    """Returns text (whole lines) moved from indentation old to new, ending with a line break."""
    if not text:
        return ""
    out = []
    for line in text.split("\n"):
        if not line.strip():
            out.append("")
        else:
            out.append(new + line[len(old):] if line.startswith(old) else new + line.lstrip())
    return "\n".join(out) + "\n"


def _regions(code: str) -> list[tuple[int, int]]:
    """Returns the EVOLVE-BLOCK spans of code (the whole code when it has no markers)."""
    try:
        return evolve_blocks(code) or [(0, len(code))]
    except ProblemError as exc:
        raise _Reject(f"EVOLVE-BLOCK markers are unbalanced: {exc}") from None


def _inside(start: int, end: int, regions: list[tuple[int, int]]) -> bool:
    """Returns True when [start, end) lies within one region."""
    return any(low <= start and end <= high for low, high in regions)


def _first_outside_line(code: str, start: int, end: int, regions: list[tuple[int, int]]) -> int:
    """Returns the 1-based number of the first line of [start, end) outside every region."""
    pos = start
    while pos < end and any(low <= pos < high for low, high in regions):
        pos = code.find("\n", pos) + 1 or end
    return code.count("\n", 0, min(pos, len(code))) + 1


# --- rewrite ----------------------------------------------------------------------------------


def _rewrite(parent: str, answer: str, allow_plain: bool) -> tuple[str, int]:
    """Returns the child made by replacing the parent's EVOLVE-BLOCK bodies, and their count."""
    code = _fenced_code(answer)
    if code is None:
        code = _plain_code(answer) if allow_plain else None
        if code is None:
            raise _Reject("no code block found; answer with the new code in one ```python block")
    if not code.strip():
        raise _Reject("the code block is empty")
    spans = _regions(parent)
    bodies = _bodies(code, parent, spans)
    child = parent
    for (start, end), body in reversed(list(zip(spans, bodies))):
        child = child[:start] + _fit(body, _block_indent(parent, start, end)) + child[end:]
    return child, len(spans)


def _fenced_code(answer: str) -> str | None:
    """Returns the longest ```python / ``` block of the answer (an unclosed last one counts)."""
    blocks: list[tuple[str, list[str]]] = []
    lang: str | None = None
    for line in answer.split("\n"):
        match = _FENCE.match(line)
        if lang is None:
            if match:
                lang = match.group(1).lower()
                blocks.append((lang, []))
        elif match and not match.group(1):
            lang = None
        else:
            blocks[-1][1].append(line)
    texts = [lines for tag, lines in blocks if tag in _PYTHON_TAGS]
    return "\n".join(max(texts, key=lambda lines: len("\n".join(lines)))) if texts else None


def _closed_prefix(answer: str) -> str | None:
    """Returns the answer up to its last closed ```python block, or None when no block closed."""
    lines, lang, end = answer.split("\n"), None, None
    for i, line in enumerate(lines):
        match = _FENCE.match(line)
        if lang is None and match:
            lang = match.group(1).lower()
        elif lang is not None and match and not match.group(1):
            if lang in _PYTHON_TAGS:
                end = i
            lang = None
    return None if end is None else "\n".join(lines[: end + 1])


def _plain_code(answer: str) -> str | None:
    """Returns the answer when it is plain Python code (parses, and is more than a bare word)."""
    text = textwrap.dedent(answer).strip("\n")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    real = [node for node in tree.body
            if not isinstance(node, ast.Expr) or isinstance(node.value, ast.Call)]
    return text if real else None


def _bodies(code: str, parent: str, spans: list[tuple[int, int]]) -> list[str]:
    """Returns the new body of each parent EVOLVE-BLOCK read from the answer's code."""
    starts, ends = code.count(BLOCK_START), code.count(BLOCK_END)
    unbalanced = _Reject(f"the answer has {starts} EVOLVE-BLOCK-START and {ends} EVOLVE-BLOCK-END "
                         "marker(s); keep each block's pair of marker lines")
    if starts and starts == ends:
        try:
            found = evolve_blocks(code)
        except ProblemError:
            raise unbalanced from None
        if len(found) != len(spans):
            raise _Reject(f"the answer has {len(found)} EVOLVE-BLOCK(s), the program has "
                          f"{len(spans)}; rewrite every block and keep its markers")
        return [code[start:end] for start, end in found]
    if len(spans) > 1:
        if starts or ends:
            raise unbalanced
        raise _Reject(f"the program has {len(spans)} EVOLVE-BLOCKs; answer with the whole program, "
                      "keeping every EVOLVE-BLOCK-START / EVOLVE-BLOCK-END marker line")
    if starts + ends > 1:
        raise unbalanced
    if starts:
        newline = code.find("\n", code.find(BLOCK_START))
        code = code[newline + 1:] if newline >= 0 else ""
    elif ends:
        code = code[:code.rfind("\n", 0, code.find(BLOCK_END)) + 1]
    start, end = spans[0]
    before, after = _frame_around(parent, start, end)
    return [_strip_frame(code, before, after, _block_indent(parent, start, end))]


def _frame_around(parent: str, start: int, end: int) -> tuple[list[str], list[str]]:
    """Returns the significant lines before the block's START marker and after its END marker."""
    if BLOCK_START not in parent:
        return [], []
    newline = parent.find("\n", end)
    before = parent[:parent.rfind("\n", 0, start - 1) + 1].splitlines()
    after = parent[newline + 1:].splitlines() if newline >= 0 else []
    return [x for x in before if _is_significant(x)], [x for x in after if _is_significant(x)]


def _is_significant(line: str) -> bool:
    """Returns True for a line that is neither blank nor a comment."""
    return bool(line.strip()) and not line.strip().startswith("#")


def _strip_frame(code: str, before: list[str], after: list[str], indent: str) -> str:
    """Returns the block body of an answer that may repeat the program around the block.

    For a nested block, keeps only the body of the line that opens its scope (e.g. its `def`)
    when the answer has that line; then drops the longest tail of the parent's lines before the
    block that the answer starts with, and the longest head of the lines after it that it ends with.
    """
    lines = code.split("\n")
    if indent:
        lines = _enclosed(lines, before, len(indent))
    sig = [i for i, line in enumerate(lines) if _is_significant(line)]
    texts, head = [lines[i].strip() for i in sig], [x.strip() for x in before]
    front = next((len(head) - j for j in range(len(head))
                  if len(head) - j < len(texts) and texts[:len(head) - j] == head[j:]), 0)
    if front:
        lines = lines[sig[front - 1] + 1:]
    texts = [line.strip() for line in lines if _is_significant(line)]
    sig = [i for i, line in enumerate(lines) if _is_significant(line)]
    tail = [x.strip() for x in after]
    back = next((k for k in range(len(tail), 0, -1)
                 if k < len(texts) and texts[len(texts) - k:] == tail[:k]), 0)
    return "\n".join(lines[:sig[len(sig) - back]] if back else lines)


def _enclosed(lines: list[str], before: list[str], indent: int) -> list[str]:
    """Returns the body, in the answer, of the line that opens the block's scope in the parent
    (e.g. its `def`); all lines when the answer does not have that line."""
    opener = next((x for x in reversed(before)
                   if _width(x) < indent and x.split("#")[0].rstrip().endswith(":")), None)
    if opener is None:
        return lines
    key = _opener_key(opener)
    at = next((i for i, x in enumerate(lines)
               if _is_significant(x) and _opener_key(x) == key), None)
    if at is None:
        return lines
    stop = next((j for j in range(at + 1, len(lines))
                 if _is_significant(lines[j]) and _width(lines[j]) <= _width(lines[at])),
                len(lines))
    body = lines[at + 1:stop]
    return body if any(_is_significant(x) for x in body) else lines


def _opener_key(line: str) -> str:
    """Returns what identifies a scope-opening line: `def name` / `class name`, else the line."""
    text = line.strip()
    match = re.match(r"(?:async\s+)?(?:def|class)\s+\w+", text)
    return match.group(0) if match else text.split("#")[0].rstrip()


def _width(line: str) -> int:
    """Returns the width of a line's indentation."""
    return len(line) - len(line.lstrip())


def _block_indent(parent: str, start: int, end: int) -> str:
    """Returns the indentation of a parent block: its body's common indent, else its marker's."""
    indents = [line[:len(line) - len(line.lstrip())]
               for line in parent[start:end].splitlines() if line.strip()]
    if indents or start == 0:
        return _common_prefix(indents)
    marker = parent[parent.rfind("\n", 0, start - 1) + 1:start]
    return marker[:len(marker) - len(marker.lstrip())]


def _fit(body: str, indent: str) -> str:
    """Returns body re-indented to the block's indentation, without edge blank lines."""
    text = textwrap.dedent(body).strip("\n").rstrip()
    if not text.strip():
        raise _Reject("the answer leaves the EVOLVE-BLOCK empty; answer with the full new code")
    return "\n".join(indent + line if line.strip() else "" for line in text.split("\n")) + "\n"


# --- checks -----------------------------------------------------------------------------------


def _check_child(parent: str, child: str) -> None:
    """Raises _Reject when the child changed code outside its blocks or does not compile."""
    if _outside(child) != _outside(parent):
        raise _Reject("the child changes code outside the EVOLVE-BLOCKs or their markers; "
                      "change only the lines between the markers")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(child, "program.py", "exec")
    except SyntaxError as exc:
        text = (exc.text or "").strip()
        raise _Reject(f"SyntaxError: {exc.msg} at line {exc.lineno}"
                      + (f": {text[:80]!r}" if text else "")) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _Reject(f"the child does not compile: {type(exc).__name__}: {exc}") from None


def _outside(code: str) -> list[str]:
    """Returns the pieces of code outside its EVOLVE-BLOCK bodies (markers included)."""
    pieces, pos = [], 0
    for start, end in _regions(code):
        pieces.append(code[pos:start])
        pos = end
    return pieces + [code[pos:]]
