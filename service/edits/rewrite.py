"""Full rewrites: the new EVOLVE-BLOCK bodies read from an answer's code and put into the parent."""

from __future__ import annotations

import ast
import re
import textwrap
import warnings

from service.edits.common import FENCE, PYTHON_TAGS, Rejected, common_prefix, regions
from service.problems.blocks import BLOCK_END, BLOCK_START, MarkerError, evolve_blocks


def rewrite(parent: str, answer: str, allow_plain: bool) -> tuple[str, int, bool]:
    """Returns the child made by replacing the parent's EVOLVE-BLOCK bodies, their count, and
    whether the answer was more than the one block asked for (the whole file, or its markers),
    so that only the block's body was taken from it."""
    code = fenced_code(answer)
    if code is None:
        code = _plain_code(answer) if allow_plain else None
        if code is None:
            raise Rejected("no code block found; answer with the new code in one ```python block")
    if not code.strip():
        raise Rejected("the code block is empty")
    spans = regions(parent)
    bodies = _bodies(code, parent, spans)
    whole = len(spans) == 1 and _significant(bodies[0]) != _significant(code)
    child = parent
    for (start, end), body in reversed(list(zip(spans, bodies, strict=True))):
        child = child[:start] + _fit(body, _block_indent(parent, start, end)) + child[end:]
    return child, len(spans), whole


def fenced_code(answer: str) -> str | None:
    """Returns the longest ```python / ``` block of the answer (an unclosed last one counts)."""
    blocks: list[tuple[str, list[str]]] = []
    lang: str | None = None
    for line in answer.split("\n"):
        match = FENCE.match(line)
        if lang is None:
            if match:
                lang = match.group(1).lower()
                blocks.append((lang, []))
        elif match and not match.group(1):
            lang = None
        else:
            blocks[-1][1].append(line)
    texts = [lines for tag, lines in blocks if tag in PYTHON_TAGS]
    return "\n".join(max(texts, key=lambda lines: len("\n".join(lines)))) if texts else None


def closed_prefix(answer: str) -> str | None:
    """Returns the answer up to its last closed ```python block, or None when no block closed."""
    lines, lang, end = answer.split("\n"), None, None
    for i, line in enumerate(lines):
        match = FENCE.match(line)
        if lang is None and match:
            lang = match.group(1).lower()
        elif lang is not None and match and not match.group(1):
            if lang in PYTHON_TAGS:
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
    unbalanced = Rejected(f"the answer has {starts} EVOLVE-BLOCK-START and {ends} EVOLVE-BLOCK-END "
                         "marker(s); keep each block's pair of marker lines")
    if starts and starts == ends:
        try:
            found = evolve_blocks(code)
        except MarkerError:
            raise unbalanced from None
        if len(found) != len(spans):
            raise Rejected(f"the answer has {len(found)} EVOLVE-BLOCK(s), the program has "
                          f"{len(spans)}; rewrite every block and keep its markers")
        return [code[start:end] for start, end in found]
    if len(spans) > 1:
        if starts or ends:
            raise unbalanced
        raise Rejected(f"the program has {len(spans)} EVOLVE-BLOCKs; answer with the whole "
                       "program, keeping every EVOLVE-BLOCK-START / EVOLVE-BLOCK-END marker line")
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


def _significant(code: str) -> list[str]:
    """Returns the stripped code lines of code (no blank or comment lines)."""
    return [line.strip() for line in code.split("\n") if _is_significant(line)]


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
        return common_prefix(indents)
    marker = parent[parent.rfind("\n", 0, start - 1) + 1:start]
    return marker[:len(marker) - len(marker.lstrip())]


def _fit(body: str, indent: str) -> str:
    """Returns body re-indented to the block's indentation, without edge blank lines."""
    text = textwrap.dedent(body).strip("\n").rstrip()
    if not text.strip():
        raise Rejected("the answer leaves the EVOLVE-BLOCK empty; answer with the full new code")
    return "\n".join(indent + line if line.strip() else "" for line in text.split("\n")) + "\n"

