"""An evolution strategy as a program: the ask/tell update rule of a black-box optimiser."""

import numpy as np


# EVOLVE-BLOCK-START
class Strategy:
    """A black-box optimiser that MAXIMISES fitness, driven by ask() / tell().

    __init__(x0, sigma, popsize, seed): x0 is the start point (1-D array), sigma the initial
    step size, popsize how many candidates each ask() must return, seed for the random numbers.
    ask() returns an array of shape (popsize, len(x0)) of candidates to try.
    tell(solutions, fitness) gets those candidates back with one fitness each (higher is better).
    self.mean is read at the end as the answer, so keep it at the best point you know.
    This one is a plain (mu, lambda)-ES with a fixed step size: keep the best quarter, average it.
    """

    def __init__(self, x0, sigma, popsize, seed):
        self.mean = np.array(x0, dtype=float)
        self.sigma = sigma
        self.popsize = popsize
        self.rng = np.random.default_rng(seed)

    def ask(self):
        noise = self.rng.standard_normal((self.popsize, self.mean.size))
        return self.mean + self.sigma * noise

    def tell(self, solutions, fitness):
        best = np.argsort(fitness)[::-1][: self.popsize // 4]
        self.mean = solutions[best].mean(axis=0)
# EVOLVE-BLOCK-END
