"""Packs the items: order.py says in which order, place.py which bin takes each item."""

from numbers import Integral

from order import order
from place import place


def pack(sizes: list[int], capacity: int) -> list[list[int]]:
    """Returns the bins, each the list of the indices of the items it holds."""
    sequence = list(order(list(sizes), capacity))
    if not all(isinstance(i, Integral) for i in sequence) \
            or sorted(sequence) != list(range(len(sizes))):
        raise ValueError(f"order() returned {len(sequence)} values that are not a permutation "
                         f"of range({len(sizes)}); return each item's index exactly once")
    bins: list[list[int]] = []
    free: list[int] = []
    for i in sequence:
        chosen = place(sizes[i], list(free), capacity)
        if not isinstance(chosen, Integral) or not 0 <= chosen <= len(free):
            raise ValueError(f"place(item={sizes[i]}, free, capacity) returned {chosen!r}; "
                             f"return an index of free, or len(free) = {len(free)} for a new bin")
        if chosen == len(free):
            bins.append([])
            free.append(capacity)
        elif free[chosen] < sizes[i]:
            raise ValueError(f"place(item={sizes[i]}, free, capacity) chose bin {chosen}, which "
                             f"has {free[chosen]} free; choose a bin with room for the item")
        bins[chosen].append(int(i))
        free[chosen] -= sizes[i]
    return bins
