"""The one EVOLVE-BLOCK parser: where a program's evolving code is, and its text.

A block is the lines between a `# EVOLVE-BLOCK-START` line and the next `# EVOLVE-BLOCK-END`
line. Each caller picks a fallback by name: `evolve_blocks` is strict (unbalanced markers raise
MarkerError), `blocks_or_whole` treats a program without markers as one block, and `block_text`
/ `lenient_blocks` read whatever they can (a program with broken markers is shown whole).
"""

from __future__ import annotations

BLOCK_START = "# EVOLVE-BLOCK-START"
BLOCK_END = "# EVOLVE-BLOCK-END"
Spans = list[tuple[int, int]]
HELD_START, HELD_END = "# EVOLVE-HELD-START", "# EVOLVE-HELD-END"  # hold_other_blocks' markers


class MarkerError(ValueError):
    """A START marker has no matching END marker; the message says where."""


def evolve_blocks(code: str) -> Spans:
    """Returns (start, end) character spans of the text inside each EVOLVE-BLOCK, in order;
    raises MarkerError when a START marker has no END marker after it."""
    spans: Spans = []
    pos = 0
    while True:
        start = code.find(BLOCK_START, pos)
        if start < 0:
            return spans
        body = code.find("\n", start)
        end = code.find(BLOCK_END, start)
        if end < 0 or body < 0 or body > end:
            raise MarkerError(f"'{BLOCK_START}' at offset {start} has no matching '{BLOCK_END}'")
        line_start = code.rfind("\n", 0, end) + 1
        spans.append((body + 1, line_start))
        pos = end + len(BLOCK_END)


def blocks_or_whole(code: str) -> Spans:
    """Returns the EVOLVE-BLOCK spans, or one span of the whole code when it has no markers;
    raises MarkerError on unbalanced markers."""
    return evolve_blocks(code) or [(0, len(code))]


def lenient_blocks(code: str) -> Spans:
    """Returns the EVOLVE-BLOCK spans; none when the markers are broken."""
    try:
        return evolve_blocks(code)
    except MarkerError:
        return []


def block_text(code: str, separator: str = "\n") -> str:
    """Returns the evolving code: the block bodies joined by separator (the whole code when it
    has no blocks or broken markers)."""
    spans = lenient_blocks(code)
    if not spans:
        return code
    return separator.join(code[start:end] for start, end in spans)


def block_name(path: str, number: int | None) -> str:
    """Returns how prompts and answers name a block of a folder program: `place.py` for a file's
    only block, `place.py#2` for the second of several."""
    return path if number is None else f"{path}#{number}"


def parse_block_name(name: str) -> tuple[str, int | None]:
    """Returns (path, block number or None) of a name made by block_name."""
    path, sep, number = name.rpartition("#")
    return (path, int(number)) if sep and number.isdigit() and path else (name, None)


def hold_other_blocks(code: str, number: int) -> tuple[str, int]:
    """Returns code with every block but the number-th (1-based) turned into plain code (its
    markers renamed, HELD_START / HELD_END), and how many blocks code has; restore with
    release_blocks."""
    spans = lenient_blocks(code)
    if not 1 <= number <= len(spans):
        return code, len(spans)
    lines = code.split("\n")
    starts = [i for i, line in enumerate(lines) if BLOCK_START in line]
    ends = [i for i, line in enumerate(lines) if BLOCK_END in line]
    for k, (start, end) in enumerate(zip(starts, ends, strict=False), 1):
        if k != number:
            lines[start] = lines[start].replace(BLOCK_START, HELD_START)
            lines[end] = lines[end].replace(BLOCK_END, HELD_END)
    return "\n".join(lines), len(spans)


def release_blocks(code: str) -> str:
    """Returns code with the markers hold_other_blocks renamed restored."""
    return code.replace(HELD_START, BLOCK_START).replace(HELD_END, BLOCK_END)
