"""The order in which the items are packed: every size is known before packing starts."""


# EVOLVE-BLOCK-START
def order(sizes: list[int], capacity: int) -> list[int]:
    """Returns the indices of the items in the order they are packed, a permutation of
    range(len(sizes)). This is decreasing size, the 'decreasing' of first-fit decreasing."""
    return sorted(range(len(sizes)), key=lambda i: -sizes[i])
# EVOLVE-BLOCK-END
