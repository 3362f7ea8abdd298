"""The staged copy of a problem folder that the slot uids read: once per version, read-only,
content-addressed, safe under concurrent workers; evaluations read it as if it were the folder."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluators.evaluate import evaluate_job
from evaluators.isolation import layers, staging, uids
from evaluators.jobs import EvalJob, EvalResult
from tests.evaluators.conftest import private_problem

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="slot uids (and staging) need root")
UID = uids.uid_range().start
DATA_EVALUATOR = '''import importlib.util
import os
from pathlib import Path

HERE = Path(__file__).parent


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    data = float((HERE / "data" / "value.txt").read_text())
    if data < 0:
        raise ValueError(f"negative value in {HERE / 'data' / 'value.txt'}")
    return {"combined_score": data * program.solve(),
            "cwd_is_work": float(os.getcwd() != str(HERE))}
'''


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Yields a fresh $EVOFORGE_HOME that other users can enter."""
    path = Path(tempfile.mkdtemp(prefix="evoforge-home-"))
    path.chmod(0o755)
    monkeypatch.setenv(staging.HOME_VAR, str(path))
    layers.reset()
    yield path
    layers.reset()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_problem() -> Iterator[Path]:
    """Yields a problem in a 0700 folder whose evaluator reads data/value.txt next to it."""
    problem = private_problem(0)
    (problem / "evaluator.py").write_text(DATA_EVALUATOR)
    (problem / "data").mkdir()
    (problem / "data" / "value.txt").write_text("3.5\n")
    (problem / "__pycache__").mkdir()
    (problem / "__pycache__" / "junk.pyc").write_bytes(b"x")
    yield problem
    shutil.rmtree(problem.parent, ignore_errors=True)


def evaluate(code: str, problem: Path, **fields: object) -> EvalResult:
    job = EvalJob(code=code, problem_dir=str(problem), evaluator_file=str(problem / "evaluator.py"),
                  **{"timeout_s": 20, **fields})
    return evaluate_job(job)


@needs_root
def test_a_folder_is_staged_once_per_version_read_only_and_content_addressed(
        home: Path, data_problem: Path) -> None:
    first = staging.stage(data_problem, UID)
    assert first.parent == home / "staged" and len(first.name) == 64
    assert staging.stage(data_problem, UID) == first  # same content: the same copy
    assert (first / "data" / "value.txt").read_text() == "3.5\n"
    assert not (first / "__pycache__").exists()
    for path in (first, *first.rglob("*")):
        info = path.stat()
        assert info.st_uid == 0 and not info.st_mode & 0o222, f"{path} is writable"
    assert uids.unreachable(first / "data" / "value.txt", UID) is None
    (data_problem / "data" / "value.txt").write_text("4.5\n")
    second = staging.stage(data_problem, UID)
    assert second != first and (second / "data" / "value.txt").read_text() == "4.5\n"
    assert (first / "data" / "value.txt").read_text() == "3.5\n"  # old versions stay as they were
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".tmp-")]


def _stage(args: tuple[str, str, int]) -> str:
    folder, home, uid = args
    os.environ[staging.HOME_VAR] = home
    return str(staging.stage(folder, uid))


@needs_root
def test_concurrent_workers_staging_one_version_end_with_one_complete_copy(
        home: Path, data_problem: Path) -> None:
    for i in range(50):  # enough files for the copies to overlap in time
        (data_problem / "data" / f"f{i}.txt").write_text(str(i) * 1000)
    with multiprocessing.get_context("fork").Pool(6) as pool:
        paths = pool.map(_stage, [(str(data_problem), str(home), UID)] * 12)
    assert len(set(paths)) == 1
    staged = Path(paths[0])
    assert sorted(p.name for p in staged.parent.iterdir()) == [staged.name]  # no temporaries
    assert len(list((staged / "data").iterdir())) == 51


@needs_root
def test_the_evaluator_reads_its_data_next_to_it_and_errors_name_the_problem_folder(
        home: Path, data_problem: Path) -> None:
    result = evaluate("def solve():\n    return 1\n", data_problem)
    assert result.ok and result.score == 3.5, result.error
    assert "uid" in result.layers and result.metrics["cwd_is_work"] == 1.0
    (data_problem / "data" / "value.txt").write_text("-1\n")  # a new version, staged anew
    failed = evaluate("def solve():\n    return 1\n", data_problem)
    assert failed.error_kind == "exception" and str(data_problem / "data") in failed.error, \
        failed.error
    assert str(home) not in failed.error + repr(failed.artifacts)


@needs_root
def test_a_candidate_cannot_change_the_staged_evaluator_for_the_next_one(
        home: Path, data_problem: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.ENV_VAR, "rlimits,uid")  # no bwrap: only the uid and the copy
    layers.reset()
    tamper = ("import sys\n\ndef solve():\n    path = sys.modules['evaluator'].__file__\n"
              "    open(path, 'a').write('\\nraise SystemExit')\n    return 1\n")
    result = evaluate(tamper, data_problem)
    assert result.error_kind == "exception" and "Permission denied" in result.error, result.error
    after = evaluate("def solve():\n    return 1\n", data_problem)
    assert after.ok and after.score == 3.5, after.error


@needs_root
def test_a_home_other_users_cannot_enter_falls_back_to_the_system_folder(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    private = tmp_path / "home"  # pytest's tmp_path lies under a 0700 folder, as /root does
    monkeypatch.setenv(staging.HOME_VAR, str(private))
    assert staging.staging_root(UID) == staging.SYSTEM_ROOT


@needs_root
def test_a_staging_folder_others_can_write_is_never_used(
        home: Path, data_problem: Path) -> None:
    (home / "staged").mkdir(mode=0o777)
    (home / "staged").chmod(0o777)  # another local user could plant a forged "version" there
    assert staging.staging_root(UID) == staging.SYSTEM_ROOT
    assert stat.S_IMODE((home / "staged").stat().st_mode) == 0o777
