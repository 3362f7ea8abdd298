"""The curved part of the curve."""


# EVOLVE-BLOCK-START
def bend(x):
    return 0.3 * x * x
# EVOLVE-BLOCK-END
