"""A tiny problem and scripted answers shared by the engine and CLI tests."""

from __future__ import annotations

from pathlib import Path

from service.config import RunConfig, build_run_config

PROGRAM = """\"\"\"Return a number as close to 10 as possible.\"\"\"
# EVOLVE-BLOCK-START
def value():
    return 1
# EVOLVE-BLOCK-END
"""
EVALUATOR = """import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    v = float(mod.value())
    return {"combined_score": -abs(v - 10.0), "value": v}
"""
TOML = """[problem]
name = "tiny"
description = "Make value() return a number as close to 10 as possible."
[run.evaluation]
timeout_s = 10
workers = 2
"""


def tiny_problem(folder: Path) -> Path:
    """Writes the tiny problem into folder and returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "initial_program.py").write_text(PROGRAM)
    (folder / "evaluator.py").write_text(EVALUATOR)
    (folder / "problem.toml").write_text(TOML)
    return folder


def invalid_above_ten(folder: Path) -> Path:
    """The tiny problem whose evaluator marks a value above 10 invalid, keeping its score."""
    evaluator = folder / "evaluator.py"
    evaluator.write_text(evaluator.read_text().replace(
        '"value": v}', '"value": v, "validity": 0.0 if v > 10 else 1.0}'))
    return folder


def answer(body: str) -> str:
    """Returns a rewrite answer holding body as the new block."""
    return f"Here is a better version:\n```python\n{body}\n```\n"


def returns(v: object) -> str:
    """Returns a rewrite answer whose value() returns v."""
    return answer(f"def value():\n    return {v}")


def config(**over: object) -> RunConfig:
    """Returns a small run config for tests, with dotted overrides like budget__iterations=3."""
    layer: dict = {"llm": {"backend": "scripted"}, "evaluation": {"workers": 2, "timeout_s": 10},
                   "search": {"num_islands": 2, "migration_interval": 4}}
    for key, value in over.items():
        section, _, name = key.partition("__")
        if name:
            layer.setdefault(section, {})[name] = value
        else:
            layer[section] = value
    return build_run_config(layer)
