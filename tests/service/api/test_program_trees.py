"""A problem whose program is a folder: uploaded with its tree, refused with the bad path named,
run, and every program shown with its files and a diff per file."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile

import pytest

from evaluators import tree
from service.db.models import ProblemRow
from service.db.stored import problem_folder
from service.problems.load import load_problem
from tests.conftest import REPO
from tests.service.api.conftest import Api

QUICKSTART = REPO / "problems" / "quickstart_files"
BETTER_LINE = "def line(x):\n    return 1.0 * x + 1.0"


def quickstart_files() -> dict[str, str]:
    """Returns problems/quickstart_files as an upload's map: initial_program/PATH for its tree."""
    return {p.relative_to(QUICKSTART).as_posix(): p.read_text()
            for p in sorted(QUICKSTART.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def rewrite(path: str, block: str) -> str:
    """Returns an answer rewriting the EVOLVE-BLOCK of the file path of a folder program."""
    return f"{path}\n```python\n{block}\n```\n"


def _post(api: Api, files: dict[str, str]):
    return api.client.post("/api/problems", json={"files": files}, headers=api.h("alice"))


def _tar(files: dict[str, str], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in files.items():
            info = tarfile.TarInfo(f"quickstart_files/{name}")
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
        if link:
            info = tarfile.TarInfo(f"quickstart_files/{link}")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(info)
    return buf.getvalue()


def test_a_folder_program_uploads_with_its_tree_and_loads(api: Api) -> None:
    r = _post(api, quickstart_files())
    assert r.status_code == 201, r.text
    assert r.json()["initial_score"] is not None
    got = api.client.get(f"/api/problems/{r.json()['id']}", headers=api.h("alice")).json()
    assert {"initial_program/curve.py", "initial_program/bend.py",
            "initial_program/line.py"} <= set(got["files"])
    r = api.client.post("/api/problems/upload", headers=api.h("alice"), files={
        "archive": ("q.tar.gz", _tar(quickstart_files()), "application/gzip")})
    assert r.status_code == 201, r.text


def test_an_uploaded_tree_is_recreated_where_its_folder_is_gone(api: Api) -> None:
    r = _post(api, quickstart_files())
    assert r.status_code == 201, r.text
    with api.db.session() as s:
        prow = s.get(ProblemRow, r.json()["id"])
        shutil.rmtree(prow.path)  # another machine: only the stored files are there
        problem = load_problem(problem_folder(prow, api.settings))
    assert problem.is_tree and set(tree.split(problem.initial_code)) == {
        "bend.py", "curve.py", "line.py"}


def test_several_starting_folders_upload_under_initial_programs(api: Api) -> None:
    files = quickstart_files()
    seeds = {f"initial_programs/{seed}/{name.split('/', 1)[1]}": text
             for seed in ("a", "b") for name, text in files.items()
             if name.startswith("initial_program/")}
    rest = {k: v for k, v in files.items() if not k.startswith("initial_program/")}
    r = _post(api, rest | seeds)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("bad", "named", "says"), [
    ("initial_program/.hidden.py", "initial_program/.hidden.py", "hidden"),
    ("initial_program/../evaluator2.py", "initial_program/../evaluator2.py", "escapes"),
    ("/initial_program/x.py", "/initial_program/x.py", "escapes"),
    ("lib/util.py", "lib/util.py", "sub-folders"),
])
def test_a_bad_path_in_a_program_tree_is_a_422_naming_it(api: Api, bad: str, named: str,
                                                          says: str) -> None:
    r = _post(api, quickstart_files() | {bad: "x = 1\n"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["details"][0]["file"] == named and says in err["message"]
    assert "fix:" in err["message"]


def test_a_tree_past_the_limits_and_links_in_it_are_refused(api: Api) -> None:
    many = {f"initial_program/m{i}.py": "" for i in range(tree.MAX_FILES)}
    r = _post(api, quickstart_files() | many)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["file"] == "initial_program"
    assert f"at most {tree.MAX_FILES}" in r.json()["error"]["message"]
    r = api.client.post("/api/problems/upload", headers=api.h("alice"), files={
        "archive": ("q.tar.gz", _tar(quickstart_files(), link="initial_program/evil.py"),
                    "application/gzip")})
    assert r.status_code == 422 and "links" in r.json()["error"]["message"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in quickstart_files().items():
            zf.writestr(name, text)
        link = zipfile.ZipInfo("initial_program/evil.py")
        link.external_attr = (0o120777 << 16)  # a symbolic link, as zip -y stores one
        zf.writestr(link, "/etc/passwd")
    r = api.client.post("/api/problems/upload", headers=api.h("alice"), files={
        "archive": ("q.zip", buf.getvalue(), "application/zip")})
    assert r.status_code == 422 and "initial_program/evil.py" in r.json()["error"]["message"]


def test_problem_toml_may_name_only_its_own_program_folders(api: Api) -> None:
    files = quickstart_files()
    toml = files["problem.toml"].replace("[problem]\n", "[problem]\ninitial_program = "
                                         "\"initial_program\"\n", 1)
    assert _post(api, files | {"problem.toml": toml}).status_code == 201
    elsewhere = toml.replace('initial_program = "initial_program"', 'initial_program = "/srv/x"')
    r = _post(api, files | {"problem.toml": elsewhere})
    assert r.status_code == 422 and "/srv/x" in r.json()["error"]["message"]


def test_a_run_of_a_folder_program_shows_files_and_a_diff_per_file(api: Api) -> None:
    r = _post(api, quickstart_files())
    assert r.status_code == 201, r.text
    answers = api.tmp / "tree_answers.json"
    answers.write_text(json.dumps([rewrite("line.py", BETTER_LINE)] * 2))
    run_id = api.run(problem_id=r.json()["id"], iterations=2, llm={"use": api.scripted(answers)},
                     search={"num_islands": 1})
    api.drive(run_id)
    run = api.client.get(f"/api/runs/{run_id}", headers=api.h("alice")).json()
    best = api.client.get(f"/api/programs/{run['best_program_id']}", headers=api.h("alice")).json()
    assert list(best["files"]) == ["bend.py", "curve.py", "line.py"]
    assert best["code"] == tree.join(best["files"])
    changes = {d["path"]: d["change"] for d in best["file_diffs"]}
    assert changes == {"bend.py": "unchanged", "curve.py": "unchanged", "line.py": "changed"}
    [line] = [d for d in best["file_diffs"] if d["path"] == "line.py"]
    assert line["diff"].startswith("--- a/line.py\n+++ b/line.py\n")
    assert "+    return 1.0 * x + 1.0" in line["diff"] and best["diff"] == line["diff"]
    initial = best["parent_id"]
    assert api.client.get(f"/api/programs/{initial}", headers=api.h("alice")).json()[
        "file_diffs"] is None
    cmp = api.client.get(f"/api/ui/programs/{initial}/compare/{best['id']}",
                         headers=api.h("alice")).json()
    assert [(d["path"], d["change"]) for d in cmp["files"]] == [
        ("bend.py", "unchanged"), ("curve.py", "unchanged"), ("line.py", "changed")]
