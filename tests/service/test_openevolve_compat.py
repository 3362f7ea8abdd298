"""OpenEvolve-style folders as their users ship them: config.yaml settings (LLM ones advisory),
cascades that stop early without failing, `problems check` per stage, errors an evaluator reports,
and real runs (scripted LLM; one on the embedded model for the max_tokens clamp)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from service.config import build_run_config
from service.db import Database
from service.db.models import LLMSampleRow, ProgramRow, RunRow
from service.evolution.prompts import smallest_prompt_tokens
from service.execution.check import check_problem
from service.problems.load import load_problem
from service.runs import fit_advisory, initial_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openevolve_style"
EVOFORGE = [sys.executable, "-m", "service.cli"]
CLAMP_NOTE = "written for another model"


def copy(name: str, tmp_path: Path) -> Path:
    """Returns a copy of a fixture folder (runs write nothing there, but tests may)."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def evoforge(*args: str, home: Path, ok: bool = True, timeout: float = 600
             ) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVOFORGE_HOME": str(home), "COLUMNS": "200"}
    proc = subprocess.run([*EVOFORGE, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)
    assert (proc.returncode == 0) == ok, \
        f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def answers(tmp_path: Path, bodies: list[str]) -> Path:
    """Writes scripted rewrite answers (one new EVOLVE-BLOCK body each); returns the file."""
    path = tmp_path / "answers.json"
    path.write_text(json.dumps([f"Better:\n```python\n{b}\n```\n" for b in bodies]))
    return path


def search_near(low: float, high: float) -> str:
    return f"def search():\n    return 3.0 + random.uniform({low}, {high})"


def test_config_yaml_llm_settings_are_carried_as_advisory_hints(tmp_path: Path) -> None:
    prob = load_problem(FIXTURES / "noisy_minimum")
    llm = prob.run_defaults["llm"]
    assert (llm["temperature"], llm["top_p"], llm["max_tokens"]) == (0.6, 0.9, 16000)
    assert llm["system_message"].startswith("You improve a random search")
    assert prob.advisory == {"llm.temperature": 0.6, "llm.top_p": 0.9, "llm.max_tokens": 16000}
    assert prob.run_defaults["evaluation"] == {"timeout_s": 30, "cascade_thresholds": [0.5]}
    assert llm["answer_format"] == "rewrite"  # diff_based_evolution: false
    folder = copy("noisy_minimum", tmp_path)
    text = (folder / "config.yaml").read_text().replace("temperature: 0.6", "temperature: 3.5")
    text = text.replace("diff_based_evolution: false", "diff_based_evolution: true")
    (folder / "config.yaml").write_text(text.replace("max_tokens: 16000", "max_tokens: 4"))
    odd = load_problem(folder)
    assert (odd.run_defaults["llm"]["temperature"], odd.run_defaults["llm"]["max_tokens"]) == \
        (2.0, 16)
    assert any("llm.temperature = 3.5 is outside" in n for n in odd.notes)
    assert odd.run_defaults["llm"]["answer_format"] == "auto"  # diffs if the model writes them
    build_run_config(odd.run_defaults)  # a value written for another model never refuses a run


@pytest.mark.parametrize(("evaluator", "thresholds"), [
    ("", [0.5, 0.75, 0.9]),  # OpenEvolve's defaults when the config names none
    ("  cascade_evaluation: false\n", None),
    ("  cascade_thresholds: [0.2]\n", [0.2]),
])
def test_openevolve_cascade_settings_translate(tmp_path: Path, evaluator: str,
                                               thresholds: list[float] | None) -> None:
    folder = copy("three_stages", tmp_path)
    (folder / "config.yaml").write_text("evaluator:\n  timeout: 5\n" + evaluator)
    run = load_problem(folder).run_defaults
    assert run["evaluation"].get("cascade_thresholds") == thresholds


def test_advisory_max_tokens_is_cut_to_half_the_context_and_a_user_value_stays() -> None:
    prob = load_problem(FIXTURES / "noisy_minimum")
    cfg = build_run_config(prob.run_defaults)
    assert fit_advisory(prob, cfg, 4096, _words).llm.max_tokens == 2048
    assert fit_advisory(prob, cfg, 65536, _words).llm.max_tokens == 16000  # it fits: kept
    mine = build_run_config(prob.run_defaults, {"llm": {"max_tokens": 20000}})
    assert fit_advisory(prob, mine, 4096, _words).llm.max_tokens == 20000  # the user's: strict


def test_advisory_max_tokens_leaves_a_long_initial_program_its_prompt(tmp_path: Path) -> None:
    folder = copy("noisy_minimum", tmp_path)
    program = folder / "initial_program.py"
    lines = program.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "EVOLVE-BLOCK-START" in line)
    padding = [f"    # step {i}: a long comment the prompt has to carry along" for i in range(190)]
    program.write_text("\n".join(lines[:start + 1] + padding + lines[start + 1:]) + "\n")
    prob = load_problem(folder)
    cfg = build_run_config(prob.run_defaults)
    fitted = fit_advisory(prob, cfg, 4096, _words).llm.max_tokens
    smallest = max(smallest_prompt_tokens(initial_context(prob, cfg, fmt), _words)
                   for fmt in ("diff", "rewrite"))
    assert smallest > 2048  # the half split would leave the prompt no room: the run would pause
    assert fitted == 4096 - smallest - smallest // 4 - 16
    planner_budget = 4096 - fitted - 16
    assert smallest <= planner_budget


def _words(text: str) -> int:
    """A tokenizer stand-in: one token per word."""
    return len(text.split())


def test_check_shows_each_stage_with_its_metrics_threshold_and_outcome(tmp_path: Path) -> None:
    folder = copy("three_stages", tmp_path)
    program = folder / "initial_program.py"
    program.write_text(program.read_text().replace("return 0", "return 1"))
    report = check_problem(folder)
    assert report.ok, report.render()
    text = report.render()
    assert "stage 1: combined_score=0.6, error=0, s1=1; 0.6 (combined_score) >= threshold 0.5: " \
           "passed" in text
    assert "stage 2: combined_score=0.7, s2=2; 0.7 (combined_score) < threshold 0.75: stopped: " \
           "the program is scored by the metrics of the stages it ran" in text
    assert "OK: the initial program scored 0.7 (combined_score)" in text


def test_check_keeps_an_initial_program_that_misses_a_gate_with_a_warning(tmp_path: Path) -> None:
    folder = copy("three_stages", tmp_path)
    (folder / "problem.toml").write_text("[run.evaluation]\ncascade_thresholds = [0.5, 0.75]\n"
                                         "cascade_gates = true\n")
    report = check_problem(folder)
    text = report.render()
    assert report.ok and not report.defects, text
    assert "0.3 (combined_score) < threshold 0.5: a gate: the program fails" in text
    assert "warning: the initial program missed cascade gate 1 (0.3 < 0.5)" in text
    assert "OK: the initial program scored 0.3" in text


def test_check_names_an_error_the_evaluator_reports(tmp_path: Path) -> None:
    report = check_problem(FIXTURES / "reports_error")
    assert not report.ok and len(report.defects) == 1
    defect = report.defects[0]
    assert defect.file.endswith("reports_error/evaluator.py")
    assert "scored 0.0 because the evaluator reported an error: No module named " \
           "'quantum_widgets_not_installed'" in defect.message
    assert "install the missing module 'quantum_widgets_not_installed'" in defect.fix
    assert "OK" not in report.render()
    folder = copy("reports_error", tmp_path)  # an error beside a real score: a warning only
    (folder / "evaluator.py").write_text(
        "def evaluate(path):\n    return {'combined_score': 0.5, 'error': 'slow path used'}\n")
    scored = check_problem(folder)
    assert scored.ok and "warning: the evaluator reported an error for the initial program: " \
                         "slow path used" in scored.render()
    (folder / "evaluator.py").write_text("def evaluate(path):\n    return {'error': 'no data'}\n")
    unscored = check_problem(folder)
    assert not unscored.ok and "returned no 'combined_score' metric" in \
        unscored.defects[0].message
    assert unscored.defects[0].message.endswith("(the evaluator reported: no data)")


def test_stochastic_initial_program_below_a_stage_threshold_runs_and_is_reverified_as_noisy(
        tmp_path: Path) -> None:
    folder = copy("noisy_minimum", tmp_path)
    home = tmp_path / "home"
    script = answers(tmp_path, [search_near(-0.05, 0.05), search_near(1.2, 1.4),
                                search_near(-0.3, 0.3)])
    proc = evoforge("run", str(folder), "--llm", "scripted", "--model", str(script), "--json",
                    home=home)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["iterations"] == 3
    assert summary["failed"] == 0 and summary["initial_score"] < 0.5  # stopped at stage 1
    assert summary["best_score"] > 0.9
    assert summary["best_tier"].startswith("re-evaluated (stochastic, sd ")
    assert proc.stderr.count(CLAMP_NOTE) == 1 and "at most 2048 tokens" in proc.stderr
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    with db.session() as s:
        run = s.scalars(select(RunRow)).one()
        assert (run.config["llm"]["temperature"], run.config["llm"]["top_p"]) == (0.6, 0.9)
        prompts = [r.prompt for r in s.scalars(select(LLMSampleRow))]
        initial = s.scalars(select(ProgramRow).where(ProgramRow.kind == "initial")).one()
    assert prompts[0][0]["content"].startswith("You improve a random search")
    assert initial.status == "ok" and set(initial.metrics) == {"combined_score",
                                                               "runs_successfully"}
    best = evoforge("best", "1", home=home)
    assert "(re-evaluated (stochastic, sd " in best.stderr
    shown = evoforge("runs", "show", "1", home=home).stdout
    assert "re-evaluated (stochastic, sd " in shown


def test_an_initial_program_that_misses_a_gate_does_not_stop_the_run(tmp_path: Path) -> None:
    folder = copy("three_stages", tmp_path)
    (folder / "problem.toml").write_text("[run.evaluation]\ncascade_thresholds = [0.5, 0.75]\n"
                                         "cascade_gates = true\nreverify_top_k = 0\n")
    script = answers(tmp_path, ["def level():\n    return 1", "def level():\n    return 3"])
    proc = evoforge("run", str(folder), "--iterations", "2", "--llm", "scripted", "--model",
                    str(script), "--json", home=tmp_path / "home")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["initial_score"] == 0.3
    assert summary["best_score"] == 100.0 and summary["failed"] == 1  # level 1 misses gate 2
    assert "missed cascade gate 1 (0.3 < 0.5)" in proc.stderr


def test_an_evaluator_error_that_zeroes_the_initial_score_refuses_the_run(tmp_path: Path) -> None:
    proc = evoforge("run", str(FIXTURES / "reports_error"), "--iterations", "1", "--llm",
                    "scripted", "--model", str(answers(tmp_path, ["def values():\n    return []"])),
                    home=tmp_path / "home", ok=False)
    assert "evaluator reported an error: No module named 'quantum_widgets_not_installed'" \
        in proc.stderr
    assert "missing module must be installed" in proc.stderr
    listed = json.loads(evoforge("runs", "list", "--json", home=tmp_path / "home").stdout)
    assert listed["status"] == "failed" and "quantum_widgets" in listed["stop_reason"]


def test_errors_children_report_show_in_eval_and_the_run_summary(tmp_path: Path) -> None:
    folder = copy("reports_error", tmp_path)
    (folder / "evaluator.py").write_text(
        "import importlib.util\n\n\ndef evaluate(path):\n"
        "    spec = importlib.util.spec_from_file_location('p', path)\n"
        "    mod = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(mod)\n"
        "    vals = mod.values()\n    if not vals:\n"
        "        return {'combined_score': 0.0, 'error': 'values() returned nothing'}\n"
        "    return {'combined_score': float(sum(vals))}\n")
    script = answers(tmp_path, ["def values():\n    return []", "def values():\n    return [9.0]"])
    home = tmp_path / "home"
    proc = evoforge("run", str(folder), "--iterations", "2", "--llm", "scripted", "--model",
                    str(script), "--json", home=home)
    assert json.loads(proc.stdout.strip().splitlines()[-1])["reported_errors"] == 1
    assert "1 scored program(s) carry an error their evaluator reported; latest: values() " \
           "returned nothing" in proc.stdout
    empty = tmp_path / "empty.py"
    empty.write_text("def values():\n    return []\n")
    shown = evoforge("eval", str(folder), str(empty), home=home).stdout
    assert "the evaluator reported an error: values() returned nothing" in shown


def test_advisory_max_tokens_is_clamped_on_the_embedded_model(tmp_path: Path) -> None:
    folder = copy("noisy_minimum", tmp_path)
    home = tmp_path / "home"
    proc = evoforge("run", str(folder), "--iterations", "1", "--json", home=home)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["llm_calls"] >= 1
    assert proc.stderr.count(CLAMP_NOTE) == 1 and "4096-token context" in proc.stderr
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    with db.session() as s:
        samples = list(s.scalars(select(LLMSampleRow)))
    assert samples and all(r.prompt_tokens + r.completion_tokens <= 4096 for r in samples)
    assert all(r.completion_tokens <= 2048 for r in samples)
