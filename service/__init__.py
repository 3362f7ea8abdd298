"""evoforge's service: the loop (problem -> database -> prompt -> LLM -> edit -> sandboxed
evaluation -> database) and what sits beside it (RL trainer, API, controller, workers, CLI).

Packages import down the data flow only (docs/architecture.md): cli, api -> controller -> runs ->
rl -> evolution -> edits | llm | execution -> db -> problems -> config -> catalog -> telemetry
(metrics and log context, which every package may use); evaluators/ is below them all.
"""
