"""Cost measurements: controller, sandbox, Celery, API, two-phase scoring, GRPO, RL envs, LLM use.

Each module runs as `python -m benchmarks.perf.<name>` from the repository root; where a peer has
the same part (OpenEvolve's controller and evaluation path), it runs in the same command.
"""
