"""Third autocorrelation inequality: a step function (any sign) whose |f*f| peak is low."""

import numpy as np


# EVOLVE-BLOCK-START
def step_heights():
    """Returns f's heights on equal steps covering [-1/4, 1/4]: a list or 1-D array, any sign."""
    n = 50
    return np.ones(n)  # the constant function: the bound is exactly 2.0
# EVOLVE-BLOCK-END


def construct():
    """Returns the step heights; the trusted scorer computes the bound from them."""
    return step_heights()
