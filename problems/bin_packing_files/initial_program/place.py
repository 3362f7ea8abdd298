"""Which bin takes an item: one of the open bins that has room for it, or a new bin."""


# EVOLVE-BLOCK-START
def place(item: int, free: list[int], capacity: int) -> int:
    """Returns the index in free of the open bin that takes the item, or len(free) to open a
    new bin. item: its size; free: the room left in each open bin, in the order the bins were
    opened. This is first fit: the first bin with room."""
    for i, room in enumerate(free):
        if room >= item:
            return i
    return len(free)
# EVOLVE-BLOCK-END
