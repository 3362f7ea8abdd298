"""Online bin packing heuristic (FunSearch style): each arriving item goes into a bin at once."""

import numpy as np


# EVOLVE-BLOCK-START
def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Returns one priority per bin that can hold the item; the item goes into the highest one.

    item: the size of the arriving item. bins: the remaining capacities of the open bins
    that still have room for it (each >= item). This is best fit: the tightest bin wins.
    """
    return -(bins - item)
# EVOLVE-BLOCK-END
