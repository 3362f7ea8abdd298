"""What the search finds for a fixed budget: the problem suite, feature ablations, test-time RL
on vs off, and the quickstart over seeds. Run as `python -m benchmarks.quality.<name>`."""
