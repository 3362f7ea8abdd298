"""Loading problem folders: problem.toml, OpenEvolve config.yaml, markers, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.problems.blocks import evolve_blocks
from service.problems.load import ProblemError, load_problem
from service.problems.shipped import shipped
from tests.conftest import REPO

PROGRAM = '"""Doc line."""\n# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\nprint(x)\n'
EVALUATOR = "def evaluate(program_path):\n    return {'combined_score': 1.0}\n"


def make(tmp_path: Path, **files: str) -> Path:
    base = {"initial_program.py": PROGRAM, "evaluator.py": EVALUATOR}
    base.update(files)
    for name, text in base.items():
        if text is not None:
            (tmp_path / name).write_text(text)
    return tmp_path


def test_problem_toml_sets_metric_direction_and_run_defaults(tmp_path: Path) -> None:
    toml = ('[problem]\nname = "p"\ndescription = "d"\nscore_metric = "loss"\n'
            'direction = "minimize"\nbest_known = 1.5\n[run.budget]\niterations = 7\n')
    prob = load_problem(make(tmp_path, **{"problem.toml": toml}))
    assert (prob.name, prob.score_metric, prob.direction, prob.best_known) == \
        ("p", "loss", "minimize", 1.5)
    assert prob.run_defaults == {"budget": {"iterations": 7}}
    assert prob.direction.better(1.0, 2.0) and not prob.direction.better(2.0, 1.0)


def test_openevolve_config_yaml_is_translated(tmp_path: Path) -> None:
    yaml_text = ("max_iterations: 12\nrandom_seed: 5\ndiff_based_evolution: false\n"
                 "llm:\n  temperature: 0.3\n  api_base: https://example.invalid/v1\n"
                 "prompt:\n  system_message: be brief\n"
                 "database:\n  num_islands: 3\n  exploitation_ratio: 0.5\n"
                 "evaluator:\n  timeout: 9\n  cascade_thresholds: [0.1, 0.5]\n")
    prob = load_problem(make(tmp_path, **{"config.yaml": yaml_text}))
    run = prob.run_defaults
    assert run["budget"]["iterations"] == 12 and run["seed"] == 5
    assert run["llm"] == {"temperature": 0.3, "system_message": "be brief",
                          "answer_format": "rewrite"}
    assert run["search"] == {"num_islands": 3, "exploit_ratio": 0.5}
    assert run["evaluation"] == {"timeout_s": 9, "cascade_thresholds": [0.1, 0.5]}
    assert prob.score_metric == "combined_score" and prob.score_fallback_mean
    assert any("ignored" in n for n in prob.notes)
    assert prob.description == "Doc line."


def test_a_problem_toml_beside_config_yaml_adds_to_it_and_wins_where_both_set_one(
        tmp_path: Path) -> None:
    yaml_text = "max_iterations: 12\nrandom_seed: 5\nevaluator:\n  timeout: 9\n"
    toml = '[problem]\nscore_metric = "overall"\n[run]\nseed = 8\n'
    prob = load_problem(make(tmp_path, **{"config.yaml": yaml_text, "problem.toml": toml}))
    assert prob.score_metric == "overall" and not prob.score_fallback_mean
    assert prob.run_defaults["seed"] == 8 and prob.run_defaults["budget"]["iterations"] == 12
    assert prob.run_defaults["evaluation"]["timeout_s"] == 9
    assert any("problem.toml beside config.yaml" in n for n in prob.notes)
    named_none = tmp_path / "named_none"
    named_none.mkdir()
    plain = load_problem(make(named_none, **{"config.yaml": yaml_text,
                                             "problem.toml": '[problem]\nname = "x"\n'}))
    assert plain.name == "x" and plain.score_fallback_mean  # OpenEvolve's mean stays


def test_a_file_without_markers_evolves_whole_with_a_note_naming_the_fix(tmp_path: Path) -> None:
    prob = load_problem(make(tmp_path, **{"initial_program.py": "x = 1\n"}))
    assert prob.initial_code == "x = 1\n"
    assert any(n.startswith("initial_program.py: no '# EVOLVE-BLOCK-START'") and "whole file" in n
               and "put the lines" in n for n in prob.notes)
    (tmp_path / "marked").mkdir()
    marked = load_problem(make(tmp_path / "marked"))
    assert not any("whole file" in n for n in marked.notes)


def test_unclosed_block_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="no matching"):
        load_problem(make(tmp_path, **{"initial_program.py": "# EVOLVE-BLOCK-START\nx = 1\n"}))


def test_missing_evaluator_is_named(tmp_path: Path) -> None:
    folder = make(tmp_path)
    (folder / "evaluator.py").unlink()
    with pytest.raises(ProblemError, match=r"evaluator.py: missing"):
        load_problem(folder)


def test_unknown_problem_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match=r"unknown key\(s\) \['metric'\]"):
        load_problem(make(tmp_path, **{"problem.toml": '[problem]\nmetric = "x"\n'}))


def test_bad_direction_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="direction"):
        load_problem(make(tmp_path, **{"problem.toml": '[problem]\ndirection = "up"\n'}))


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match=r"not a folder.*evoforge problems list"):
        load_problem(tmp_path / "nope")


def test_a_shipped_problem_loads_by_name_and_a_folder_of_that_name_wins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(shipped()) == {p.name for p in (REPO / "problems").iterdir()
                              if (p / "problem.toml").is_file()}
    monkeypatch.chdir(tmp_path)
    assert load_problem("quickstart").path == REPO / "problems" / "quickstart"
    (tmp_path / "quickstart").mkdir()
    own = make(tmp_path / "quickstart")
    assert load_problem("quickstart").path == own.resolve()


def test_shipped_problems_load() -> None:
    root = REPO / "problems"
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        prob = load_problem(folder)
        assert prob.description and evolve_blocks(prob.initial_code)
