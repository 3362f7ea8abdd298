"""What an operator sees of a process: Prometheus metrics counted where events happen, and log
records that carry the run, program and evaluation they concern (plain or one JSON object a line).

The bottom layer: imports nothing of service/ (the standard library and prometheus_client only),
so every package may import it."""
