"""Runs of problems whose programs are folders, with a scripted LLM in a real database and the
real sandbox: diffs to two files in one answer, several starting programs on several islands,
crossover of files, and resume."""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import select

from evaluators import tree
from service.db.models import LLMSampleRow, ProgramRow
from service.db.status import ProgramKind
from service.evolution.planner import recombine
from service.llm.scripted import ScriptedBackend
from tests.service.driver import drive
from tests.service.engine_helpers import config

GLUE = "from value import value\nfrom offset import OFFSET\n\n\ndef total():\n" \
       "    return value() + OFFSET\n"
EVALUATOR = """import sys
from pathlib import Path


def evaluate(program_path):
    for name in ("main", "value", "offset"):
        sys.modules.pop(name, None)
    sys.path.insert(0, program_path)
    import main
    return {"combined_score": -abs(main.total() - 10.0), "total": float(main.total())}
"""


def seed(v: int, offset: int) -> dict[str, str]:
    return {"main.py": GLUE,
            "value.py": f"# EVOLVE-BLOCK-START\ndef value():\n    return {v}\n# EVOLVE-BLOCK-END\n",
            "offset.py": f"# EVOLVE-BLOCK-START\nOFFSET = {offset}\n# EVOLVE-BLOCK-END\n"}


def problem(tmp_path: Path, seeds: list[dict[str, str]]) -> Path:
    root = tmp_path / "sum_files"
    for i, files in enumerate(seeds):
        for rel, text in files.items():
            path = root / "initial_programs" / f"s{i}" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    (root / "evaluator.py").write_text(EVALUATOR)
    (root / "problem.toml").write_text(
        '[problem]\nname = "sum_files"\ndescription = "Make total() return 10."\n'
        "[run.evaluation]\ntimeout_s = 10\nworkers = 2\n")
    return root


def both_files(messages: object, k: int) -> str:
    return ("value.py\n<<<<<<< SEARCH\n    return 1\n=======\n    return 4\n>>>>>>> REPLACE\n"
            "offset.py\n<<<<<<< SEARCH\nOFFSET = 0\n=======\nOFFSET = 6\n>>>>>>> REPLACE\n")


def programs(db, run_id: int) -> list[ProgramRow]:
    with db.session() as s:
        return list(s.scalars(select(ProgramRow).where(ProgramRow.run_id == run_id)
                              .order_by(ProgramRow.id)))


def test_one_diff_answer_changes_two_files_and_the_child_is_scored(
        tmp_path: Path, db_url: str) -> None:
    llm = ScriptedBackend(both_files, small_model=False)
    db, run, _ = drive(db_url, problem(tmp_path, [seed(1, 0)]),
                       config(budget__iterations=1, search__num_islands=1), llm)
    assert "# ==== file: offset.py ====" in llm.prompts[0][-1].content
    assert "put the path of the file" in llm.prompts[0][-1].content.lower()
    child = programs(db, run.id)[-1]
    assert child.kind == ProgramKind.MUTATION and child.score == 0.0, child.failure_reason
    assert child.files == {**seed(1, 0), **{k: v for k, v in seed(4, 6).items()
                                           if k != "main.py"}}
    assert run.best_score == 0.0 and run.initial_score == -9.0


def test_a_rejected_cross_file_edit_is_a_sample_with_the_reason(
        tmp_path: Path, db_url: str) -> None:
    bad = "main.py\n<<<<<<< SEARCH\n    return value() + OFFSET\n=======\n    return 10\n" \
          ">>>>>>> REPLACE\n"
    db, run, _ = drive(db_url, problem(tmp_path, [seed(1, 0)]),
                       config(budget__iterations=1, search__num_islands=1),
                       ScriptedBackend([bad], small_model=False))
    with db.session() as s:
        sample = s.scalars(select(LLMSampleRow).where(LLMSampleRow.run_id == run.id)).one()
    assert sample.outcome == "rejected" and sample.rejection.startswith("main.py: ")
    assert len(programs(db, run.id)) == 1


def test_several_starting_programs_each_seed_an_island_and_are_all_scored(
        tmp_path: Path, db_url: str) -> None:
    folder = problem(tmp_path, [seed(1, 0), seed(2, 0), seed(3, 0)])
    llm = ScriptedBackend(["```python\ndef value():\n    return 9\n```\n"])
    db, run, _ = drive(db_url, folder, config(budget__iterations=2, search__num_islands=2), llm)
    initial = [p for p in programs(db, run.id) if p.kind == ProgramKind.INITIAL]
    assert [(p.island, p.score) for p in initial] == [(0, -9.0), (1, -8.0), (0, -7.0)]
    assert run.initial_score == -7.0  # the best starting program
    assert "The program is several files; the code to improve is in" in \
        llm.prompts[0][-1].content


def test_a_folder_run_resumes_from_its_stored_trees(tmp_path: Path, db_url: str) -> None:
    folder = problem(tmp_path, [seed(1, 0)])
    cfg = config(budget__iterations=1, search__num_islands=1)
    db, run, _ = drive(db_url, folder, cfg, ScriptedBackend(both_files, small_model=False))

    def five(messages: list, k: int) -> str:  # whichever stored tree the resumed run samples:
        text = messages[-1].content  # the parent is shown before any inspiration
        old = min(("return 4", "return 1"), key=lambda s: text.find(s) % (len(text) + 1))
        return f"value.py\n<<<<<<< SEARCH\n    {old}\n=======\n    return 5\n>>>>>>> REPLACE\n"

    db, resumed, _ = drive(db, folder, config(budget__iterations=2, search__num_islands=1),
                           ScriptedBackend(five, small_model=False), run_id=run.id)
    rows = programs(db, run.id)
    assert resumed.iterations == 2 and len(rows) == 3
    parent = next(p for p in rows if p.id == rows[-1].parent_id)
    assert rows[-1].files == {**parent.files, "value.py": seed(5, 0)["value.py"]}
    assert rows[-1].score == -abs(5 + int(parent.files["offset.py"].split()[-3]) - 10)


def test_crossover_of_folder_programs_takes_files_from_each_parent() -> None:
    a, b = tree.join(seed(1, 0)), tree.join(seed(2, 5))
    children = {recombine(a, b, random.Random(i)) for i in range(20)}
    assert children == {tree.join({**seed(1, 0), "offset.py": seed(2, 5)["offset.py"]}),
                        tree.join({**seed(1, 0), "value.py": seed(2, 5)["value.py"]})}
    assert recombine(a, tree.join(seed(1, 7)), random.Random(0)) == a  # one file differs
