"""SEARCH/REPLACE diff blocks: parsed from an answer and applied only inside EVOLVE-BLOCKs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.edits.common import FENCE, Rejected, common_prefix, regions
from service.problems.blocks import BLOCK_END, BLOCK_START

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
REPLACE_LINE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")


@dataclass(frozen=True)
class Block:
    """One SEARCH/REPLACE pair."""

    search: str
    replace: str
    line: int = 0  # the answer line (1-based) of its '<<<<<<< SEARCH'


def diff_blocks(answer: str) -> list[Block]:
    """Returns the SEARCH/REPLACE blocks of an answer, in order."""
    blocks: list[Block] = []
    state, search, replace, start = None, [], [], 0
    for number, line in enumerate(answer.splitlines(), 1):
        if state is None:
            if _SEARCH.match(line):
                state, search, replace, start = "search", [], [], number
        elif state == "search":
            if _DIVIDER.match(line):
                state = "replace"
            elif _SEARCH.match(line) or REPLACE_LINE.match(line):
                raise Rejected(f"diff block at answer line {start} has no '=======' line between "
                              "its SEARCH and REPLACE parts")
            else:
                search.append(line)
        elif REPLACE_LINE.match(line):
            blocks.append(Block("\n".join(_unfence(search)), "\n".join(_unfence(replace)),
                                start))
            state = None
        else:
            replace.append(line)
    if state is not None:
        raise Rejected(f"diff block at answer line {start} is not closed with '>>>>>>> REPLACE'")
    return blocks


def _unfence(lines: list[str]) -> list[str]:
    """Returns the lines without a ``` fence line at either end (models sometimes wrap parts)."""
    if lines and FENCE.match(lines[0]):
        lines = lines[1:]
    if lines and FENCE.match(lines[-1]):
        lines = lines[:-1]
    return lines


def apply_diff(code: str, blocks: list[Block]) -> str:
    """Returns code with every block applied in order, each inside an EVOLVE-BLOCK region."""
    for index, block in enumerate(blocks, 1):
        where = f"diff block {index} of {len(blocks)}"
        if not block.search.strip():
            raise Rejected(f"{where}: empty SEARCH part; copy the lines to change from the program")
        if BLOCK_START in block.replace or BLOCK_END in block.replace:
            raise Rejected(f"{where}: REPLACE part holds an EVOLVE-BLOCK marker; markers never "
                          "change")
        code = _apply_block(code, block, where)
    return code


def _apply_block(code: str, block: Block, where: str) -> str:
    """Returns code with one block applied: exact match first, then a whitespace-tolerant one."""
    spans = regions(code)
    exact = _exact_hits(code, block.search)
    for start, end in exact:
        if _inside(start, end, spans):
            return code[:start] + block.replace + code[_eat_newline(code, start, end, block):]
    tolerant = _tolerant_hits(code, block.search)
    for start, end, indent, search_indent in tolerant:
        if _inside(start, end, spans):
            return code[:start] + _reindent(block.replace, search_indent, indent) + code[end:]
    hits = exact + [(s, e) for s, e, _, _ in tolerant]
    if hits:
        line = _first_outside_line(code, *hits[0], spans)
        raise Rejected(f"{where}: edit touches code outside EVOLVE-BLOCK at line {line}; change "
                      "only lines between the EVOLVE-BLOCK-START and EVOLVE-BLOCK-END markers")
    first = next(line.strip() for line in block.search.splitlines() if line.strip())
    raise Rejected(f"{where}: SEARCH text not found in the program: {first[:100]!r}; copy the "
                  "lines exactly as they are")


def _exact_hits(code: str, search: str) -> list[tuple[int, int]]:
    """Returns the character spans where search occurs verbatim."""
    hits, pos = [], code.find(search)
    while pos >= 0:
        hits.append((pos, pos + len(search)))
        pos = code.find(search, pos + 1)
    return hits


def _eat_newline(code: str, start: int, end: int, block: Block) -> int:
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
    common = common_prefix(indents)
    return [line[len(common):].rstrip() if line.strip() else "" for line in lines], common


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


def _inside(start: int, end: int, regions: list[tuple[int, int]]) -> bool:
    """Returns True when [start, end) lies within one region."""
    return any(low <= start and end <= high for low, high in regions)


def _first_outside_line(code: str, start: int, end: int, regions: list[tuple[int, int]]) -> int:
    """Returns the 1-based number of the first line of [start, end) outside every region."""
    pos = start
    while pos < end and any(low <= pos < high for low, high in regions):
        pos = code.find("\n", pos) + 1 or end
    return code.count("\n", 0, min(pos, len(code))) + 1

