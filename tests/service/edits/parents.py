"""Parent programs and helpers shared by the edit tests: where the EVOLVE-BLOCKs are, what lies
outside them, and running a child."""

from __future__ import annotations

from service.edits.apply import EditResult
from service.problems.blocks import evolve_blocks

PARENT = '''"""Sum of the first n integers."""
import math


def solve(n):
    total = 0
    # EVOLVE-BLOCK-START
    for i in range(n):
        total += i
    # EVOLVE-BLOCK-END
    return total


if __name__ == "__main__":
    print(solve(10))
'''

TWO_BLOCKS = '''import math

# EVOLVE-BLOCK-START
SCALE = 1.0
# EVOLVE-BLOCK-END


def f(x):
    # EVOLVE-BLOCK-START
    return x * SCALE
    # EVOLVE-BLOCK-END
'''

MODULE_LEVEL = '''import math

# EVOLVE-BLOCK-START
def f(x):
    return x + 1
# EVOLVE-BLOCK-END

print(f(1))
'''


def diff(search: str, replace: str, marks: int = 7) -> str:
    return (f"{'<' * marks} SEARCH\n{search}\n{'=' * marks}\n{replace}\n{'>' * marks} REPLACE\n")


def outside(code: str) -> list[str]:
    """Returns the code outside the EVOLVE-BLOCK bodies, markers included."""
    pieces, pos = [], 0
    for start, end in evolve_blocks(code):
        pieces.append(code[pos:start])
        pos = end
    return pieces + [code[pos:]]


def body(code: str, index: int = 0) -> str:
    start, end = evolve_blocks(code)[index]
    return code[start:end]


def run(code: str, n: int = 10) -> object:
    scope: dict = {"__name__": "child"}
    exec(compile(code, "program.py", "exec"), scope)  # noqa: S102 - the tests' own fixtures
    return scope["solve"](n)


def accepted(result: EditResult, parent: str = PARENT) -> str:
    assert result.rejection is None, result.rejection
    assert result.code is not None and result.ok
    assert outside(result.code) == outside(parent), "code outside the EVOLVE-BLOCKs changed"
    return result.code
