"""The straight part of the curve."""


# EVOLVE-BLOCK-START
def line(x):
    return -0.7 * x + 0.1
# EVOLVE-BLOCK-END
