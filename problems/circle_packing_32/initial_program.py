"""Circle packing: place 32 disjoint circles in the unit square with the largest sum of radii."""

import numpy as np

N_CIRCLES = 32


# EVOLVE-BLOCK-START
def construct_packing():
    """Returns (centers, radii): a (32, 2) array of circle centres and a (32,) array of radii."""
    centers = [[0.5, 0.5]]
    for k in range(10):  # inner ring
        angle = 2 * np.pi * k / 10
        centers.append([0.5 + 0.25 * np.cos(angle), 0.5 + 0.25 * np.sin(angle)])
    for k in range(21):  # outer ring, pushed into the square
        angle = 2 * np.pi * k / 21
        centers.append([0.5 + 0.42 * np.cos(angle), 0.5 + 0.42 * np.sin(angle)])
    centers = np.clip(np.array(centers), 0.02, 0.98)
    return centers, max_radii(centers)


def max_radii(centers):
    """Returns radii as large as fixed centres allow, shrunk a little to stay strictly valid."""
    n = len(centers)
    radii = np.minimum(np.minimum(centers[:, 0], 1 - centers[:, 0]),
                       np.minimum(centers[:, 1], 1 - centers[:, 1]))
    for i in range(n):
        for j in range(i + 1, n):
            gap = np.hypot(*(centers[i] - centers[j]))
            if radii[i] + radii[j] > gap:
                scale = gap / (radii[i] + radii[j])
                radii[i] *= scale
                radii[j] *= scale
    return radii * (1 - 1e-9)
# EVOLVE-BLOCK-END


def run_packing():
    """Returns (centers, radii) of the evolved construction; the evaluator checks them exactly."""
    return construct_packing()
