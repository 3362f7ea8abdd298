"""Answers -> child code: SEARCH/REPLACE diffs and full rewrites, applied only inside EVOLVE-BLOCKs.

May import problems/ (the EVOLVE-BLOCK parser) and config; knows nothing of the loop or the LLM."""
