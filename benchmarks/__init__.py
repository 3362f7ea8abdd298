"""Side-by-side measurements of evoforge (not tests), run from the repository root as modules.

    .venv/bin/python -m benchmarks.perf.controller_overhead --help

harness/  what every measurement shares: paths, running evoforge once and its best-so-far curve,
          the result store (benchmarks/out/), statistics, plots, the LLM server, peer venvs
perf/     cost per iteration, evaluation, request, training step: evoforge against a peer
quality/  what the search finds for a budget: the problem suite, ablations, RL on/off, seeds
toolkit/  the evolution-strategies helpers that problems import (evaluators.toolkit)
peers/    evoforge vs OpenEvolve on the same problems, and the code that runs in the peer's venv
vllm/     the production LLM path on CPU: vLLM with runtime LoRA next to embedded llama.cpp

Every `__init__` here holds a docstring only: the peer-side modules run with the peer's python
(`benchmarks/.venv-<peer>`), which has none of evoforge's dependencies.
"""
