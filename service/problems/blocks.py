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
