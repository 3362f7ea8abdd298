"""Heilbronn problem in a triangle: 11 points whose smallest triangle is as large as possible."""

import numpy as np


# EVOLVE-BLOCK-START
def place_points():
    """Returns 11 points inside the triangle (0, 0), (1, 0), (1/2, sqrt(3)/2): an (11, 2) array."""
    rng = np.random.default_rng(0)
    weights = rng.dirichlet([2.0, 2.0, 2.0], size=11)  # random convex weights of the corners
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    return weights @ corners
# EVOLVE-BLOCK-END


def construct():
    """Returns the points; the trusted scorer checks them and finds the smallest triangle."""
    return place_points()
