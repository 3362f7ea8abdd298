"""Quickstart in files: the curve is the sum of a bend and a line, each in its own file."""

from bend import bend
from line import line


def curve(x):
    """Returns the curve at x: bend(x) + line(x)."""
    return bend(x) + line(x)
