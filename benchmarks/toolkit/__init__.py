"""The evolution-strategies helpers problem authors import (evaluators.toolkit): OpenAI-ES vs
CMA-ES baselines, and the numpy / pycma / evosax backends side by side."""
