"""The two-file bin packing problem: the seed is first-fit decreasing, broken packings score 0."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from evaluators.evaluate import evaluate_job
from service.config import build_run_config
from service.execution.base import make_job
from service.problems.load import load_problem

FOLDER = Path(__file__).resolve().parents[2] / "problems" / "bin_packing_files"


@pytest.fixture(scope="module")
def evaluator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("evaluator_bin_packing_files",
                                                  FOLDER / "evaluator.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def first_fit_decreasing(sizes: tuple[int, ...], capacity: int) -> int:
    """Returns the bins first-fit decreasing uses, written here apart from the seed's files."""
    free: list[int] = []
    for size in sorted(sizes, reverse=True):
        room = next((i for i, f in enumerate(free) if f >= size), None)
        if room is None:
            free.append(capacity - size)
        else:
            free[room] -= size
    return len(free)


def program(tmp_path: Path, **replace: tuple[str, str]) -> str:
    """Returns a copy of the seed folder with text replaced in its files (file=(old, new))."""
    folder = tmp_path / "program"
    shutil.copytree(FOLDER / "initial_program", folder)
    for stem, (old, new) in replace.items():
        path = folder / f"{stem}.py"
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))
    return str(folder)


def test_seed_is_a_folder_of_three_files_two_of_them_evolving() -> None:
    problem = load_problem(FOLDER)
    assert problem.is_tree and len(problem.starts) == 1
    assert "# ==== file: order.py ====" in problem.initial_code
    blocks = {name: "EVOLVE-BLOCK-START" in (FOLDER / "initial_program" / name).read_text()
              for name in ("order.py", "place.py", "pack.py")}
    assert blocks == {"order.py": True, "place.py": True, "pack.py": False}


def test_initial_program_scores_what_first_fit_decreasing_gives(evaluator: ModuleType) -> None:
    result = evaluator.evaluate(str(FOLDER / "initial_program"))
    expected, over = [], 0
    for inst in evaluator.instances():
        used, bound = first_fit_decreasing(inst.sizes, inst.capacity), \
            evaluator.lower_bound(inst.sizes, inst.capacity)
        expected.append(bound / used)
        over += used - bound
        assert f"{inst.name} ({len(inst.sizes)} items, capacity {inst.capacity}): {used} bins, " \
               f"lower bound {bound}, {used - bound} over" in result.artifacts["feedback"]
    assert result.metrics["combined_score"] == pytest.approx(sum(expected) / len(expected))
    assert result.metrics["excess_bins"] == over > 0 and result.metrics["validity"] == 1.0
    assert result.metrics["combined_score"] == pytest.approx(0.914877, abs=1e-6)  # README


def test_initial_program_scores_the_same_in_the_real_sandbox(evaluator: ModuleType) -> None:
    problem = load_problem(FOLDER)
    run = build_run_config(problem.run_defaults, source="bin_packing_files")
    result = evaluate_job(make_job(problem, problem.initial_code, run.evaluation))
    assert result.ok, result.error
    in_process = evaluator.evaluate(str(FOLDER / "initial_program")).metrics["combined_score"]
    assert result.score == pytest.approx(in_process)


def test_triplet_instances_fill_their_bins_exactly_and_uniform_ones_leave_the_noted_room(
        evaluator: ModuleType) -> None:
    room = []
    for inst in evaluator.instances():
        bound = evaluator.lower_bound(inst.sizes, inst.capacity)
        if inst.name.startswith("t"):
            assert sum(inst.sizes) == inst.capacity * len(inst.sizes) // 3
            assert bound == len(inst.sizes) // 3
        else:
            room.append(f"{bound * inst.capacity - sum(inst.sizes)}")
    note = load_problem(FOLDER).best_known_note  # what problem.toml says of the instances
    assert f"leave {', '.join(room[:-1])} and {room[-1]} units of room" in note


@pytest.mark.parametrize(("sizes", "capacity", "bound"), [
    ((60,) * 10, 100, 10),            # no two share a bin; ceil(sum / capacity) says 6
    ((60, 60, 40, 40), 100, 2),
    ((70, 70, 70, 35, 35, 35), 100, 5),  # each 35 fits beside a 70 only once: L1 says 4
    ((10,) * 25, 100, 3),
])
def test_lower_bound_is_martello_and_toth_l2(evaluator: ModuleType, sizes: tuple[int, ...],
                                             capacity: int, bound: int) -> None:
    assert evaluator.lower_bound(sizes, capacity) == bound


@pytest.mark.parametrize(("replace", "reason"), [
    ({"order": ("return sorted(", "return sorted(range(1, len(sizes))) or sorted(")},
     "not a permutation of range(120)"),
    ({"order": ("return sorted(", "return [0] + sorted(")}, "not a permutation"),
    ({"place": ("return i\n", "return 0\n")}, "chose bin 0, which has"),
    ({"place": ("return len(free)", "return -1")}, "returned -1"),
    ({"place": ("return len(free)", "return 'new'")}, "returned 'new'"),
    ({"place": ("for i, room", "raise KeyError('lost')\n    for i, room")}, "KeyError: 'lost'"),
    ({"pack": ("    return bins", "    return bins[1:]")}, "items are not packed"),
    ({"pack": ("    return bins", "    return [bins[0] + bins[1]] + bins[2:]")},
     "more than the capacity 150"),
    ({"pack": ("    return bins", "    return bins + [bins[0]]")}, "packed twice"),
    ({"pack": ("    return bins", "    return bins + [[]]")}, "is empty"),
    ({"pack": ("    return bins", "    return {'bins': bins}")}, "returned dict"),
    ({"pack": ("def pack(", "def packing(")}, "no pack(sizes, capacity)"),
])
def test_broken_program_scores_zero_with_its_reason(evaluator: ModuleType, tmp_path: Path,
                                                    replace: dict[str, tuple[str, str]],
                                                    reason: str) -> None:
    result = evaluator.evaluate(program(tmp_path, **replace))
    assert result.metrics["combined_score"] == 0.0 and result.metrics["validity"] == 0.0
    assert reason in result.artifacts["feedback"], result.artifacts["feedback"]
    assert result.artifacts["feedback"].startswith("invalid packing program: on u120: ") \
        or "no pack(" in reason


def test_a_single_file_is_refused_with_what_the_program_must_be(evaluator: ModuleType,
                                                                tmp_path: Path) -> None:
    single = tmp_path / "program.py"
    single.write_text((FOLDER / "initial_program" / "pack.py").read_text())
    result = evaluator.evaluate(str(single))
    assert result.metrics["validity"] == 0.0
    assert "must be a folder holding pack.py" in result.artifacts["feedback"]


def test_a_wrong_packing_fails_in_the_sandbox_with_its_reason(tmp_path: Path) -> None:
    problem = load_problem(FOLDER)
    code = problem.initial_code.replace("            return i\n", "            return 0\n")
    assert code != problem.initial_code
    run = build_run_config(problem.run_defaults, source="bin_packing_files")
    result = evaluate_job(make_job(problem, code, run.evaluation))
    assert result.score == 0.0
    assert "chose bin 0, which has" in result.artifacts["feedback"]
