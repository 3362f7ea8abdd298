"""Problem folders: load (problem.toml or OpenEvolve config.yaml; a shipped problem by name), the
one EVOLVE-BLOCK parser, export.

May import config only."""
