"""Scores an offline bin packing program of three files (order.py, place.py, pack.py) against the
L2 lower bound of Martello and Toth on fixed, seeded instances.

The program is a folder: its evaluator gets the folder's path, imports pack.py from it (pack.py
imports order.py and place.py beside it), checks every packing itself and scores it.
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

SEED = 18  # fixed: every candidate packs the same items
FILES = ("pack", "order", "place")  # the program's modules, imported from its folder


@dataclass(frozen=True)
class Instance:
    """One data set: a name, the bin capacity and the item sizes (integers)."""

    name: str
    capacity: int
    sizes: tuple[int, ...]


class Result:
    """Metrics plus artifacts (the feedback text shown to the LLM)."""

    def __init__(self, metrics: dict[str, float], feedback: str) -> None:
        self.metrics = metrics
        self.artifacts = {"feedback": feedback}


def uniform(rng: random.Random, n: int) -> Instance:
    """Returns n sizes drawn uniformly from 20..100 for bins of 150 (Falkenauer's 'uniform'
    class, drawn here: not his instances)."""
    return Instance(f"u{n}", 150, tuple(rng.randint(20, 100) for _ in range(n)))


def triplets(rng: random.Random, n: int) -> Instance:
    """Returns n sizes for bins of 1000 made of n/3 triplets that each fill a bin exactly
    (Falkenauer's 'triplet' construction, drawn here), shuffled: the optimum is n/3 bins."""
    sizes = []
    for _ in range(n // 3):
        first = rng.randint(380, 490)
        second = rng.randint(250, (1000 - first) // 2)
        sizes += [first, second, 1000 - first - second]
    rng.shuffle(sizes)
    return Instance(f"t{n}", 1000, tuple(sizes))


def instances() -> list[Instance]:
    """Returns the fixed data sets: four uniform and four triplet instances."""
    rng = random.Random(SEED)
    return ([uniform(rng, n) for n in (120, 250, 500, 1000)]
            + [triplets(rng, n) for n in (60, 120, 249, 501)])


def lower_bound(sizes: tuple[int, ...], capacity: int) -> int:
    """Returns the L2 lower bound on the number of bins (Martello and Toth 1990, 'Knapsack
    Problems', section 8.3.1): the best over K of the bins that the items above capacity - K and
    above capacity / 2 need, plus what the items from K to capacity / 2 need beyond their room."""
    best = -(-sum(sizes) // capacity)  # L1: ceil(total / capacity); L2 >= L1 (K = 0)
    for k in sorted({0, *(s for s in sizes if 2 * s <= capacity)}):
        large = [s for s in sizes if s > capacity - k]
        middle = [s for s in sizes if capacity - k >= s and 2 * s > capacity]
        small = sum(s for s in sizes if 2 * s <= capacity and s >= k)
        spare = len(middle) * capacity - sum(middle)
        best = max(best, len(large) + len(middle) + max(0, -(-(small - spare) // capacity)))
    return best


def violation(bins: Any, instance: Instance) -> str | None:
    """Returns what is wrong with a packing (every item once, no bin over capacity), or None."""
    if not isinstance(bins, list | tuple) or not all(isinstance(b, list | tuple) for b in bins):
        return f"pack() returned {type(bins).__name__}; return a list of bins, each a list of " \
               "item indices"
    seen: set[int] = set()
    for number, content in enumerate(bins):
        for i in content:
            if not isinstance(i, Integral) or isinstance(i, bool) \
                    or not 0 <= i < len(instance.sizes):
                return (f"bin {number} holds {i!r}, which is not an item index "
                        f"0..{len(instance.sizes) - 1}")
            if int(i) in seen:
                return f"item {i} is packed twice (again in bin {number})"
            seen.add(int(i))
        load = sum(instance.sizes[int(i)] for i in content)
        if load > instance.capacity:
            return f"bin {number} holds {load}, more than the capacity {instance.capacity}"
        if not content:
            return f"bin {number} is empty; every bin used must hold an item"
    if len(seen) != len(instance.sizes):
        return f"{len(instance.sizes) - len(seen)} of {len(instance.sizes)} items are not packed"
    return None


def evaluate(program_path: str) -> Result:
    """Returns the mean of L2 bound / bins used over the instances (1.0: every one packed into
    its bound) and the excess bins of each instance as feedback."""
    folder = Path(program_path)
    if not folder.is_dir():
        return _failed("the program must be a folder holding pack.py, order.py and place.py")
    pack = getattr(_import(folder), "pack", None)
    if not callable(pack):
        return _failed("pack.py defines no pack(sizes, capacity) function")
    ratios, excess, lines = [], [], []
    for instance in instances():
        try:
            bins = pack(list(instance.sizes), instance.capacity)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - the candidate's own error is the reason
            return _failed(f"on {instance.name}: {type(exc).__name__}: {exc}")
        wrong = violation(bins, instance)
        if wrong:
            return _failed(f"on {instance.name}: {wrong}")
        bound = lower_bound(instance.sizes, instance.capacity)
        ratios.append(bound / len(bins))
        excess.append(len(bins) - bound)
        lines.append(f"{instance.name} ({len(instance.sizes)} items, capacity "
                     f"{instance.capacity}): {len(bins)} bins, lower bound {bound}, "
                     f"{len(bins) - bound} over")
    return Result({"combined_score": math.fsum(ratios) / len(ratios),
                   "excess_bins": float(sum(excess)), "validity": 1.0},
                  "Bins used against the lower bound (0 over is optimal):\n" + "\n".join(lines))


def _import(folder: Path) -> Any:
    """Returns the module pack of the program folder, its sibling files importable."""
    for name in FILES:
        sys.modules.pop(name, None)  # a folder scored before in this process left its own
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("pack", folder / "pack.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(folder))


def _failed(reason: str) -> Result:
    """Returns the zero-score result of an unusable program, with the reason as feedback."""
    return Result({"combined_score": 0.0, "excess_bins": 1e6, "validity": 0.0},
                  f"invalid packing program: {reason}")
