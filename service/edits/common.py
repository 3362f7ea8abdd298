"""What the edit parsers share: fence and marker patterns, and the rejection they raise."""

from __future__ import annotations

import re

from service.problems.blocks import MarkerError, blocks_or_whole

FENCE = re.compile(r"^\s*`{3,}\s*([\w+.-]*)\s*$")
PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


class Rejected(Exception):
    """The answer cannot give a child; the message is the reason."""


def regions(code: str) -> list[tuple[int, int]]:
    """Returns the EVOLVE-BLOCK spans of code (the whole code when it has no markers)."""
    try:
        return blocks_or_whole(code)
    except MarkerError as exc:
        raise Rejected(f"EVOLVE-BLOCK markers are unbalanced: {exc}") from None


def common_prefix(items: list[str]) -> str:
    """Returns the longest common prefix of the strings."""
    if not items:
        return ""
    low, high = min(items), max(items)
    size = 0
    while size < len(low) and low[size] == high[size]:
        size += 1
    return low[:size]
