"""Problem folders: load (problem.toml or OpenEvolve config.yaml), the one EVOLVE-BLOCK parser, export.

May import config only."""
