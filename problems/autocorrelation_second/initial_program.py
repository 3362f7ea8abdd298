"""Second autocorrelation inequality: a nonnegative step function with a flat-topped f*f."""

import numpy as np


# EVOLVE-BLOCK-START
def step_heights():
    """Returns the heights of f on equal steps: a list or 1-D array, all >= 0."""
    n = 50
    return np.ones(n)  # f*f is a triangle: C2 >= 2/3
# EVOLVE-BLOCK-END


def construct():
    """Returns the step heights; the trusted scorer computes the bound from them."""
    return step_heights()
