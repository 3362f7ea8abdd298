"""Max/min distance ratio: 16 points in the plane whose largest and smallest distances are close."""

import numpy as np


# EVOLVE-BLOCK-START
def place_points():
    """Returns 16 distinct points in the plane: a (16, 2) array (any position and scale)."""
    ticks = np.arange(4.0)
    return np.array([[x, y] for x in ticks for y in ticks])  # a 4x4 grid: ratio^2 = 18
# EVOLVE-BLOCK-END


def construct():
    """Returns the points; the trusted scorer computes the ratio from them."""
    return place_points()
