"""The RL / ES problems: checks, real sandbox runs, seeds, cascades and what their scores reward."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from sqlalchemy import func, select

from evaluators.evaluate import evaluate_job
from evaluators.jobs import EvalJob
from evaluators.toolkit import es
from service.config import build_run_config
from service.db import Database
from service.db.models import EvaluationRow, ProgramRow
from service.problems.load import load_problem

PROBLEMS = Path(__file__).resolve().parents[2] / "problems"
RL_PROBLEMS = ["control_policy", "evolved_es", "pg_loss"]

GOOD_POLICY = """
import math


def cartpole_action(obs):
    return 1 if obs[2] + 0.5 * obs[3] + 0.05 * obs[0] + 0.2 * obs[1] > 0 else 0


def pendulum_torque(obs):
    cos, sin, vel = obs
    if cos > 0.85:
        return -12.0 * math.atan2(sin, cos) - 2.0 * vel
    energy = vel * vel / 6.0 + 5.0 * (cos - 1.0)
    return 2.0 if -energy * vel > 0 else -2.0
"""
BASELINE_LOSS = """
import numpy as np


def step_weights(rewards, log_probs, mask, gamma):
    returns = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1])
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        returns[t] = running
    alive = mask > 0
    advantages = returns - returns[alive].mean()
    return advantages / (advantages[alive].std() + 1e-8)
"""
# one scripted answer per iteration of a short run: a better block, a broken one, another one
RUN_ANSWERS = {
    "control_policy": [GOOD_POLICY, ("def cartpole_action(obs):\n    raise ValueError('no')\n\n\n"
                                     "def pendulum_torque(obs):\n    return 0.0"),
                       GOOD_POLICY.replace("0.85", "0.9")],
    "evolved_es": [None, ("class Strategy:\n    def __init__(self, x0, sigma, popsize, seed):\n"
                          "        self.mean = x0\n\n"
                          "    def ask(self):\n        return self.mean\n\n"
                          "    def tell(self, solutions, fitness):\n        pass"),
                   "import cma\n\n\nclass Strategy(cma.CMAEvolutionStrategy):\n    pass"],
    "pg_loss": [BASELINE_LOSS, ("def step_weights(rewards, log_probs, mask, gamma):\n"
                                "    return rewards[:1]"), BASELINE_LOSS.replace("1e-8", "1e-6")],
}
RUN_FAILED = {"control_policy": 1, "evolved_es": 2, "pg_loss": 1}  # evolved_es evaluations are slow
PENDULUM_ONLY = "def cartpole_action(obs):\n    return 1\n\n\ndef pendulum_torque(obs):\n"
STRATEGY_HEAD = ("class Strategy:\n    def __init__(self, x0, sigma, popsize, seed):\n"
                 "        self.mean = x0\n    def ask(self):\n")


def evaluator(name: str) -> ModuleType:
    """Returns the problem's evaluator module (ours, so importing it here is safe)."""
    spec = importlib.util.spec_from_file_location(f"rl_evaluator_{name}",
                                                  PROBLEMS / name / "evaluator.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write(tmp_path: Path, code: str, name: str = "program.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return str(path)


def block_of(name: str) -> str:
    """Returns the initial program's EVOLVE-BLOCK text."""
    code = (PROBLEMS / name / "initial_program.py").read_text()
    return code.split("# EVOLVE-BLOCK-START\n")[1].split("# EVOLVE-BLOCK-END")[0]


def sandboxed(name: str, code: str) -> object:
    """Returns the result of scoring code in the real sandbox under the problem's own settings."""
    problem = load_problem(PROBLEMS / name)
    run = build_run_config(problem.run_defaults, source=name)
    return evaluate_job(EvalJob(
        code=code, problem_dir=str(problem.path), evaluator_file=str(problem.evaluator_path),
        score_metric=problem.score_metric, timeout_s=run.evaluation.timeout_s,
        memory_mb=run.evaluation.memory_mb, cascade_thresholds=run.evaluation.cascade_thresholds,
        cascade_gates=run.evaluation.cascade_gates))


# ---------------------------------------------------------------- every problem

@pytest.mark.parametrize("name", RL_PROBLEMS)
def test_problem_folder_passes_evoforge_problems_check(name: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "service.cli", "problems", "check",
                           str(PROBLEMS / name)], check=False, capture_output=True, text=True,
                          timeout=300,
                          env={**os.environ, "EVOFORGE_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: the initial program scored" in proc.stdout


@pytest.mark.parametrize("name", RL_PROBLEMS)
def test_problem_declares_its_resources_and_a_cascade(name: str) -> None:
    run = build_run_config(load_problem(PROBLEMS / name).run_defaults, source=name)
    assert run.evaluation.queue == "cpu" and run.evaluation.memory_mb >= 2048
    assert run.evaluation.timeout_s >= 60 and len(run.evaluation.cascade_thresholds) == 1
    assert run.evaluation.cascade_gates  # stage 1 is a cheap gate; evaluate() gives the score
    assert callable(evaluator(name).evaluate_stage1)


@pytest.mark.parametrize("name", RL_PROBLEMS)
def test_short_run_completes_with_every_evaluation_recorded(name: str, tmp_path: Path) -> None:
    answers = [f"Here is a better version:\n```python\n{body or block_of(name)}\n```\n"
               for body in RUN_ANSWERS[name]]
    if name == "evolved_es":  # the initial rule with a shrinking step size
        answers[0] = answers[0].replace("self.mean = solutions[best].mean(axis=0)",
                                        "self.mean = solutions[best].mean(axis=0)\n"
                                        "        self.sigma *= 0.97")
    script = tmp_path / "answers.json"
    script.write_text(json.dumps(answers))
    home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-m", "service.cli", "run", str(PROBLEMS / name),
                           "--iterations", "3", "--llm", "scripted", "--model", str(script),
                           "--json"], check=False, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EVOFORGE_HOME": str(home), "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    failures = RUN_FAILED[name]
    assert summary["iterations"] == 3 and summary["evaluations"] == 4
    assert summary["failed"] == failures
    assert summary["best_score"] > summary["initial_score"]
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    with db.session() as s:
        programs = s.scalars(select(ProgramRow)).all()
        finished = dict(s.execute(select(EvaluationRow.program_id, func.count())
                                  .where(EvaluationRow.status.in_(("ok", "failed")))
                                  .group_by(EvaluationRow.program_id)).all())
        failed = s.scalars(select(EvaluationRow).where(EvaluationRow.status == "failed")).all()
    db.close()
    assert len(programs) == 4 and all(finished.get(p.id) == 1 for p in programs)
    assert sorted(p.status for p in programs) == ["failed"] * failures + ["ok"] * (4 - failures)
    assert {f.error_kind for f in failed} == {"cascade"}  # stopped by the cheap first stage


# ---------------------------------------------------------------- control_policy

def test_control_hand_written_policies_score_near_the_top(tmp_path: Path) -> None:
    control = evaluator("control_policy")
    initial = control.evaluate(str(PROBLEMS / "control_policy" / "initial_program.py")).metrics
    good = control.evaluate(write(tmp_path, GOOD_POLICY)).metrics
    assert good["cartpole_return"] == 500.0 and good["pendulum_return"] > -250
    assert good["combined_score"] > 0.9 and 0 < initial["combined_score"] < 0.3


def test_control_seed_offset_gives_fresh_but_repeatable_episodes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    control = evaluator("control_policy")
    path = str(PROBLEMS / "control_policy" / "initial_program.py")
    monkeypatch.setenv("EVOFORGE_EVAL_SEED", "0")
    first = control.evaluate(path).metrics
    monkeypatch.setenv("EVOFORGE_EVAL_SEED", "5")
    fresh, again = control.evaluate(path).metrics, control.evaluate(path).metrics
    assert fresh == again and fresh["pendulum_return"] != first["pendulum_return"]


@pytest.mark.parametrize(("body", "reason"), [
    ("def cartpole_action(obs):\n    return 3\n", "actions must lie in 0..1"),
    ("def cartpole_action(obs):\n    return obs[7]\n", "raised IndexError"),
    (PENDULUM_ONLY + "    return float('nan')\n", "NaN"),
    (PENDULUM_ONLY + "    return [1.0, 2.0]\n", "needs (2, 1)"),
    ("def cartpole_action(obs):\n    return 1\n", "no pendulum_torque(obs)"),
    ("def cartpole_action(obs:\n", "does not import"),
])
def test_control_broken_policy_scores_zero_with_the_reason(tmp_path: Path, body: str,
                                                          reason: str) -> None:
    result = evaluator("control_policy").evaluate_stage1(write(tmp_path, body))
    assert result.metrics["combined_score"] == 0.0 and result.metrics["validity"] == 0.0
    assert reason in result.artifacts["feedback"]


def test_control_broken_policy_stops_at_the_cascade_stage_in_the_sandbox() -> None:
    result = sandboxed("control_policy", "def cartpole_action(obs):\n    return 'left'\n\n\n"
                       "def pendulum_torque(obs):\n    return 0.0\n")
    assert not result.ok and result.error_kind == "cascade" and result.stage == 1
    assert "not numbers" in result.artifacts["feedback"]


# ---------------------------------------------------------------- evolved_es

def test_es_cma_beats_the_initial_rule_on_the_functions() -> None:
    es_eval = evaluator("evolved_es")
    initial = importlib.util.spec_from_file_location("es_initial",
                                                     PROBLEMS / "evolved_es" / "initial_program.py")
    program = importlib.util.module_from_spec(initial)
    initial.loader.exec_module(program)
    task = es_eval.FunctionTask("ellipsoid", 10, 1600, 9.5, 1.0)
    mine, _ = es_eval.function_score(program.Strategy, task, seed=0)
    cma_score, best = es_eval.function_score(es.CMAES, task, seed=0)
    f, x0 = es_eval.shifted(task, 0)
    assert 0 <= mine < cma_score <= 1 and best < 1e-3 * f(x0)[0]


def test_es_functions_cannot_be_solved_by_guessing_a_fixed_point() -> None:
    es_eval = evaluator("evolved_es")

    class Guess:
        def __init__(self, x0, sigma, popsize, seed):
            self.mean, self.popsize = np.zeros_like(x0), popsize

        def ask(self):
            return np.tile(self.mean, (self.popsize, 1))

        def tell(self, solutions, fitness):
            pass
    for task in es_eval.FUNCTION_TASKS:
        score, _ = es_eval.function_score(Guess, task, seed=0)
        assert score < 0.2, task.name
    one, x_one = es_eval.shifted(es_eval.FUNCTION_TASKS[0], 0)
    _, x_two = es_eval.shifted(es_eval.FUNCTION_TASKS[0], 1)
    assert not np.allclose(x_one, x_two) and one(x_one)[0] == pytest.approx(9.5 ** 2)


@pytest.mark.parametrize(("block", "reason"), [
    (STRATEGY_HEAD + "        return self.mean\n    def tell(self, x, f):\n        pass\n",
     "ask() returned shape (5,)"),
    (STRATEGY_HEAD + "        return [self.mean] * 16\n    def tell(self, x, f):\n"
     "        raise KeyError('boom')\n", "sphere: KeyError: 'boom'"),
    ("import cma\n\n\nclass Strategy(cma.CMAEvolutionStrategy):\n    pass\n", "imports cma"),
    ("from evaluators.toolkit.es import CMAES as Strategy\n", "imports evaluators.toolkit.es"),
    ("Strategy = 3\n", "defines no Strategy class"),
    ("class Strategy:\n    pass\n", "Strategy(x0, sigma=1.0, popsize=16, seed=0) raised TypeError"),
])
def test_es_broken_strategy_fails_stage1_with_the_reason(tmp_path: Path, block: str,
                                                        reason: str) -> None:
    result = evaluator("evolved_es").evaluate_stage1(write(tmp_path, block))
    assert result.metrics == {"combined_score": 0.0, "validity": 0.0}
    assert reason in result.artifacts["feedback"]


# ---------------------------------------------------------------- pg_loss

def test_pg_baseline_and_normalisation_beat_plain_reinforce(tmp_path: Path) -> None:
    pg = evaluator("pg_loss")
    plain = pg.evaluate(str(PROBLEMS / "pg_loss" / "initial_program.py")).metrics
    better = pg.evaluate(write(tmp_path, BASELINE_LOSS)).metrics
    assert better["combined_score"] > plain["combined_score"] + 0.2
    assert better["mean_return"] == pytest.approx(500 * better["combined_score"])


@pytest.mark.parametrize(("body", "reason"), [
    ("    return rewards * np.nan\n", "NaN or infinite weights"),
    ("    return rewards[:, :1]\n", "shaped like rewards"),
    ("    return rewards * 1e308\n", "became NaN or infinite"),
    ("    return None\n", "returned shape ()"),
    ("    return 'heavy'\n", "not numbers"),
])
def test_pg_unusable_weights_fail_with_the_reason(tmp_path: Path, body: str,
                                                 reason: str) -> None:
    code = "import numpy as np\n\n\ndef step_weights(rewards, log_probs, mask, gamma):\n" + body
    result = evaluator("pg_loss").evaluate_stage1(write(tmp_path, code))
    assert result.metrics == {"combined_score": 0.0, "validity": 0.0}
    assert reason in result.artifacts["feedback"]


def test_pg_learners_see_episode_shaped_inputs(tmp_path: Path) -> None:
    probe = tmp_path / "shapes.json"
    code = ("import json\n\n\ndef step_weights(rewards, log_probs, mask, gamma):\n"
            f"    open({str(probe)!r}, 'w').write(json.dumps([list(rewards.shape), "
            "float(mask.sum()), float(rewards.sum()), float((log_probs <= 0).mean()), gamma]))\n"
            "    return rewards * 0.0\n")
    evaluator("pg_loss").evaluate_stage1(write(tmp_path, code))
    shape, alive, total, nonpositive, gamma = json.loads(probe.read_text())
    assert shape[1] == 8 and alive == total > 0 and nonpositive == 1.0 and gamma == 0.99
    assert np.isclose(gamma, 0.99)


def test_control_job_seed_reaches_the_evaluator_in_the_sandbox(
        monkeypatch: pytest.MonkeyPatch) -> None:
    problem = load_problem(PROBLEMS / "control_policy")

    def job(seed: int) -> EvalJob:
        return EvalJob(code=problem.initial_code, problem_dir=str(problem.path),
                       evaluator_file=str(problem.evaluator_path), timeout_s=60, memory_mb=2048,
                       seed=seed)
    fresh, base = evaluate_job(job(5)), evaluate_job(job(0))
    monkeypatch.setenv("EVOFORGE_EVAL_SEED", "5")
    in_process = evaluator("control_policy").evaluate(str(PROBLEMS / "control_policy" /
                                                          "initial_program.py")).metrics
    assert fresh.ok and base.ok and fresh.score != base.score
    assert fresh.metrics["pendulum_return"] == pytest.approx(in_process["pendulum_return"])
