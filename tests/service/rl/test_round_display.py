"""A real `evoforge run` with an inline RL round (TRL's GRPOTrainer on the real SmolLM2) on a
terminal: the progress display shows the round (GRPO step k/n, reward mean, seconds) and the
trainer libraries' own output (weight-loading bars, warnings, raw metric dicts) goes to the
run's rl.log instead."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from service.cli.progress import round_line
from service.evolution.training import RoundProgress
from tests.service.engine_helpers import returns, tiny_problem

pytestmark = pytest.mark.llm  # the real SmolLM2 (converted, trained)

RUN_TOML = """[budget]
iterations = 8
[evaluation]
workers = 1
in_flight = 1
[rl]
enabled = true
every_n_children = 4
steps = 1
group_size = 2
max_completion_tokens = 16
threads = 1
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NOISE = ("FutureWarning", "UserWarning", "Loading weights", "{'loss'", "'reward'", "it/s]",
         "Generating train split")


def test_an_rl_round_shows_its_steps_and_sends_the_libraries_output_to_the_runs_log(
        tmp_path: Path) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([returns(v) for v in (3, 5, 7, 8, 9, 4, 6, 2)]))
    (tmp_path / "RUN.toml").write_text(RUN_TOML)
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "run", str(tiny_problem(tmp_path / "tiny")),
         "--config", str(tmp_path / "RUN.toml"), "--llm", "scripted", "--model", str(answers),
         "--json"], capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "EVOFORGE_HOME": str(home), "TTY_COMPATIBLE": "1", "COLUMNS": "250",
             "PYTHONWARNINGS": "default"})  # warnings shown as a terminal would show them
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["iterations"] == 8
    terminal = ANSI.sub("", done.stderr)
    assert "RL round: loading (1 GRPO step)" in terminal
    assert "GRPO step 1/1 · reward mean " in terminal
    assert [n for n in NOISE if n in terminal] == []
    log = (home / "runs" / "1" / "rl.log").read_text()
    assert "step 1/1 {" in log and '"reward"' in log  # each step's metric dict, kept


def test_the_round_line_says_phase_step_reward_seconds_and_where_the_output_went() -> None:
    console = Console(record=True, width=200)
    console.print(round_line(RoundProgress("training", 2, 4, 0.125, 41.6, "/h/runs/3/rl.log")))
    console.print(round_line(RoundProgress("saving", 4, 4, -1.0, 80)))
    console.print(round_line(RoundProgress("waiting for a trainer", steps=4, seconds=3)))
    text = console.export_text()
    assert "RL round: GRPO step 2/4 · reward mean 0.125 · 42 s · trainer output → " \
           "/h/runs/3/rl.log" in text
    assert "RL round: saving · GRPO step 4/4 · reward mean -1 · 80 s" in text
    assert "RL round: waiting for a trainer (4 GRPO steps) · 3 s" in text
