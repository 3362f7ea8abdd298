"""evoforge vs OpenEvolve 0.4.1 on the same problems, model, endpoint and budget, and the code that
runs inside OpenEvolve's venv (benchmarks/.venv-openevolve).

The peer-side modules (openevolve_controller, openevolve_eval) run with the peer's python as
`python -m benchmarks.peers.<name>` from the repository root, and import only the standard
library, OpenEvolve and benchmarks modules that need nothing else (perf.synthetic,
harness.timing).
"""
