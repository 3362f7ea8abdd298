"""Quickstart: change the numbers in curve(x) until it matches a hidden target curve."""


# EVOLVE-BLOCK-START
def curve(x):
    return 0.3 * x * x - 0.7 * x + 0.1
# EVOLVE-BLOCK-END
