"""Synthetic candidate programs (~1-2 KB, valid Python, one EVOLVE-BLOCK) for the benchmarks.

Standard library only: both the evoforge side (perf.fill, perf.instant) and the peer side
(peers.openevolve_controller, run with the peer's python) import it.
"""

from __future__ import annotations

import random

HEADER = '''"""Place n points in the unit square so that the smallest pairwise distance is large."""
import math

'''
FOOTER = '''

def run():
    """Returns the score of the construction."""
    return spread(construct(16))
'''
START, END = "# EVOLVE-BLOCK-START\n", "# EVOLVE-BLOCK-END\n"

_HELPER = '''def {name}(x, y, k):
    """Returns a warped copy of ({{x}}, {{y}}) for point k."""
    a = {a:.6f} * math.sin({b:.6f} * k + x)
    b = {c:.6f} * math.cos({d:.6f} * k - y)
    if a > b:
        return (x + a) % 1.0, (y - b) % 1.0
    return (x - b) % 1.0, (y + a) % 1.0

'''
_MAIN = '''def construct(n):
    """Returns n points from a golden-angle spiral bent by the helpers."""
    pts = []
    for k in range(n):
        r = math.sqrt((k + {r:.6f}) / n)
        t = k * {t:.6f}
        x, y = 0.5 + 0.5 * r * math.cos(t), 0.5 + 0.5 * r * math.sin(t)
{calls}        pts.append((min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)))
    return pts


def spread(pts):
    """Returns the smallest distance between two points."""
    best = float("inf")
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            best = min(best, math.dist(pts[i], pts[j]))
    return best
'''


def block(seed: int) -> str:
    """Returns the body of one EVOLVE-BLOCK (1-4 helpers; ~1-2 KB), distinct per seed."""
    rng = random.Random(seed)
    names = [f"warp_{seed}_{j}" for j in range(rng.randint(1, 4))]
    helpers = "".join(_HELPER.format(name=n, a=rng.random(), b=rng.uniform(0.1, 3.0),
                                     c=rng.random(), d=rng.uniform(0.1, 3.0)) for n in names)
    calls = "".join(f"        x, y = {n}(x, y, k)\n" for n in names)
    return helpers + _MAIN.format(r=rng.uniform(0.1, 0.9), t=rng.uniform(2.0, 2.6), calls=calls)


def program(seed: int) -> str:
    """Returns a whole program whose EVOLVE-BLOCK is block(seed)."""
    return HEADER + START + block(seed) + END + FOOTER


_PART = '''"""Support module {k} of the construction: fixed, only called by the evolving code."""
import math

SCALE_{k} = {a:.6f}


def part_{k}(x, y):
    """Returns (x, y) nudged by this module's scale."""
    return (x + SCALE_{k} * math.sin(y)) % 1.0, (y + SCALE_{k} * math.cos(x)) % 1.0
'''


def files(seed: int, count: int) -> dict[str, str]:
    """Returns a program of count files: main.py = program(seed), the one with the EVOLVE-BLOCK,
    and count - 1 support modules parts/part_NN.py without one (fixed; shown as signatures)."""
    rng = random.Random(-1)  # support modules are the same in every program
    parts = {f"parts/part_{k:02d}.py": _PART.format(k=k, a=rng.random()) for k in range(1, count)}
    return {"main.py": program(seed), **parts}


def answer(seed: int) -> str:
    """Returns an LLM answer in the full-rewrite format holding block(seed)."""
    return f"Here is an improved version.\n```python\n{block(seed)}```\n"


EVALUATOR = '''import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {"combined_score": float(mod.run())}
'''
