"""`evoforge problems export`: a problem folder as OpenEvolve runs it, with the one shared entry."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from evaluators.evaluate import evaluate_job
from service.config import build_run_config
from service.execution.base import make_job
from service.problems.export import ENTRY_FILE, export_openevolve, seed_note
from service.problems.load import ProblemError, load_problem
from tests.conftest import REPO

PROBLEMS = REPO / "problems"


def test_two_phase_problem_exports_with_the_shared_entry_that_scores_like_evoforge(
        tmp_path: Path) -> None:
    source = load_problem(PROBLEMS / "circle_packing")
    folder = export_openevolve(source.path, tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.yaml", "evaluator.py", "initial_program.py", "problem.toml",
        "scorer.py"]
    assert (folder / "evaluator.py").read_bytes() == ENTRY_FILE.read_bytes()
    for name in ("scorer.py", "problem.toml", "initial_program.py"):
        assert (folder / name).read_bytes() == (source.path / name).read_bytes()
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["prompt"]["system_message"] == source.description
    assert config["max_iterations"] == 200 and config["evaluator"]["timeout"] == 60
    assert config["llm"]["max_tokens"] == 1024 and not config["evaluator"]["cascade_evaluation"]
    cfg = build_run_config(source.run_defaults).evaluation
    two_phase = evaluate_job(make_job(source, source.initial_code, cfg))
    one_phase = evaluate_job(replace(  # the exported entry alone, as OpenEvolve runs it
        make_job(source, source.initial_code, cfg), scorer="", entry="",
        problem_dir=str(folder), evaluator_file=str(folder / "evaluator.py")))
    assert two_phase.ok and one_phase.ok, (two_phase.error, one_phase.error)
    assert one_phase.score == two_phase.score and one_phase.metrics["validity"] == 1.0
    assert load_problem(folder).two_phase  # evoforge still reads the exported folder


def test_one_phase_problem_keeps_its_own_evaluator(tmp_path: Path) -> None:
    folder = export_openevolve(PROBLEMS / "quickstart", tmp_path / "quick")
    assert (folder / "evaluator.py").read_bytes() == (
        PROBLEMS / "quickstart" / "evaluator.py").read_bytes()
    assert yaml.safe_load((folder / "config.yaml").read_text())["prompt"]["system_message"]


def test_export_refuses_a_folder_that_is_not_empty_or_inside_the_problem(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ProblemError, match="not an empty folder"):
        export_openevolve(PROBLEMS / "circle_packing", tmp_path / "busy")
    problem = shutil.copytree(PROBLEMS / "circle_packing", tmp_path / "cp")
    with pytest.raises(ProblemError, match="inside the problem folder"):
        export_openevolve(problem, problem / "openevolve")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_shared_entry_without_a_two_phase_declaration_names_problem_toml(tmp_path: Path) -> None:
    folder = shutil.copytree(PROBLEMS / "quickstart", tmp_path / "quick")
    shutil.copy(ENTRY_FILE, folder / "entry.py")
    spec = importlib.util.spec_from_file_location("entry_without_declaration", folder / "entry.py")
    with pytest.raises(ImportError, match=r"problem.toml: \[problem\] needs entry and scorer"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_cli_exports_and_prints_the_openevolve_command(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "service.cli", "problems", "export"]
    out = tmp_path / "heilbronn"
    proc = subprocess.run([*cli, str(PROBLEMS / "heilbronn_triangle_11"), str(out)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"openevolve-run {out / 'initial_program.py'} {out / 'evaluator.py'}" in proc.stdout
    again = subprocess.run([*cli, str(PROBLEMS / "heilbronn_triangle_11"), str(out)],
                           check=False, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "not an empty folder" in again.stderr
    other = subprocess.run([*cli, "--format", "shinka", str(PROBLEMS / "quickstart"),
                            str(tmp_path / "x")], check=False, capture_output=True, text=True,
                           timeout=120)
    assert other.returncode == 2 and "openevolve" in other.stderr


def seeded_quickstart(folder: Path) -> Path:
    """Returns a copy of quickstart whose starting programs are initial_programs/a.py and b.py."""
    shutil.copytree(PROBLEMS / "quickstart", folder)
    seed = (folder / "initial_program.py").read_text()
    (folder / "initial_program.py").unlink()
    (folder / "initial_programs").mkdir()
    (folder / "initial_programs" / "a.py").write_text(seed)
    (folder / "initial_programs" / "b.py").write_text("# seed b\n" + seed)
    return folder


def test_a_folder_program_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ProblemError) as err:
        export_openevolve(PROBLEMS / "bin_packing_files", tmp_path / "out")
    message = str(err.value)
    assert "'bin_packing_files' cannot be exported for OpenEvolve" in message
    assert "a folder of files (order.py, pack.py, place.py)" in message
    assert "OpenEvolve evolves a single file" in message and "evoforge run" in message
    assert not (tmp_path / "out").exists()


def test_several_single_file_seeds_export_the_first_and_say_so(tmp_path: Path) -> None:
    source = seeded_quickstart(tmp_path / "seeded")
    folder = export_openevolve(source, tmp_path / "out")
    assert (folder / "initial_program.py").read_text() == (
        source / "initial_programs" / "a.py").read_text()
    note = seed_note(load_problem(source))
    assert note and "2 starting programs" in note and "the first, 'a'" in note and "'b'" in note
    assert seed_note(load_problem(PROBLEMS / "quickstart")) is None


def test_cli_refuses_a_folder_program_and_notes_the_first_of_several_seeds(
        tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "service.cli", "problems", "export"]
    refused = subprocess.run([*cli, "bin_packing_files", str(tmp_path / "bpf")], check=False,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "OpenEvolve evolves a single file" in refused.stderr
    assert not (tmp_path / "bpf").exists()
    seeded = subprocess.run([*cli, str(seeded_quickstart(tmp_path / "seeded")),
                             str(tmp_path / "out")], check=False, capture_output=True, text=True,
                            timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    assert "note: quickstart has 2 starting programs" in seeded.stdout
    assert "initial_program.py is the first, 'a'" in seeded.stdout
