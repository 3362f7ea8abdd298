"""Problems over REST: created from files or archives, checked in the sandbox, bad uploads named."""

from __future__ import annotations

import io
import tarfile
import zipfile

from tests.service.api.conftest import Api, tiny_files


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _tar(files: dict[str, str], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("evil.py")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tf.addfile(info)
    return buf.getvalue()


def _upload(api: Api, data: bytes, name: str, who: str = "alice"):
    return api.client.post("/api/problems/upload", headers=api.h(who),
                           files={"archive": (name, data, "application/octet-stream")})


def test_created_problem_is_checked_listed_got_and_deleted(api: Api) -> None:
    r = api.client.post("/api/problems", json={"files": tiny_files()}, headers=api.h("alice"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "tiny" and body["initial_score"] == -9.0
    assert body["owner_token_id"] == api.ids["alice"]
    got = api.client.get(f"/api/problems/{body['id']}", headers=api.h("alice")).json()
    assert set(got["files"]) == {"initial_program.py", "evaluator.py", "problem.toml"}
    listed = api.client.get("/api/problems", headers=api.h("alice")).json()
    assert [p["id"] for p in listed["items"]] == [body["id"]] and listed["total"] == 1
    assert api.client.get("/api/problems", headers=api.h("bob")).json()["total"] == 0
    assert api.client.delete(f"/api/problems/{body['id']}", headers=api.h("alice")).status_code \
        == 204
    missing = api.client.get(f"/api/problems/{body['id']}", headers=api.h("alice"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_created_problem_carries_the_checks_notes_and_warnings(api: Api) -> None:
    files = tiny_files()
    plain = api.client.post("/api/problems", json={"files": files}, headers=api.h("alice"))
    assert plain.status_code == 201, plain.text
    assert plain.json()["notes"] == [] and plain.json()["warnings"] == []
    files["initial_program.py"] = "\n".join(
        line for line in files["initial_program.py"].splitlines() if "EVOLVE-BLOCK" not in line)
    del files["problem.toml"]
    files["config.yaml"] = "max_iterations: 3\n"
    files["evaluator.py"] = "def evaluate(path):\n    return {'a': 1.0, 'b': 3.0}\n"
    r = api.client.post("/api/problems", json={"files": files}, headers=api.h("alice"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert any("the whole file evolves" in n for n in body["notes"])
    assert body["initial_score"] == 2.0 and "the mean of 2 metrics (a, b)" in body["warnings"][0]
    got = api.client.get(f"/api/problems/{body['id']}", headers=api.h("alice")).json()
    assert got["notes"] is None  # the check's words, given when it ran


def test_zip_with_a_top_folder_and_tar_gz_are_accepted(api: Api) -> None:
    zipped = {f"tiny/{k}": v for k, v in tiny_files().items()}
    r = _upload(api, _zip(zipped), "tiny.zip")
    assert r.status_code == 201, r.text
    r = _upload(api, _tar(tiny_files()), "tiny.tar.gz")
    assert r.status_code == 201, r.text
    assert r.json()["initial_score"] == -9.0


def test_missing_evaluator_is_a_422_naming_the_file(api: Api) -> None:
    files = tiny_files()
    del files["evaluator.py"], files["problem.toml"]
    r = api.client.post("/api/problems", json={"files": files}, headers=api.h("alice"))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_problem" and "evaluator.py" in err["message"]
    assert err["details"][0]["file"] == "evaluator.py" and "add evaluator.py" in err["details"][0][
        "fix"]


def test_evaluator_that_fails_to_import_is_named_with_its_fix(api: Api) -> None:
    files = tiny_files()
    files["evaluator.py"] = "import no_such_module_xyz\n\ndef evaluate(p):\n    return {}\n"
    r = api.client.post("/api/problems", json={"files": files}, headers=api.h("alice"))
    assert r.status_code == 422, r.text
    detail = r.json()["error"]["details"][0]
    assert detail["file"].endswith("evaluator.py") and "no_such_module_xyz" in detail["message"]
    assert "fix the import error" in detail["fix"]
    assert not list((api.settings.home / "problems").glob("upload-*"))  # nothing left behind


def test_oversized_archive_and_files_are_413(api: Api) -> None:
    big = tiny_files() | {"data.txt": "x" * (80 * 1024)}
    assert api.client.post("/api/problems", json={"files": big},
                           headers=api.h("alice")).status_code == 413
    r = _upload(api, _zip(big), "big.zip")
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    bomb = tiny_files() | {"pad.txt": "0" * (1024 * 1024)}  # compresses to a few KB
    r = _upload(api, _zip(bomb), "bomb.zip")
    assert r.status_code == 413 and "unpacks to" in r.json()["error"]["message"]


def test_path_traversal_and_links_in_archives_are_refused(api: Api) -> None:
    for data, name in ((_zip(tiny_files() | {"../escape.py": "x = 1\n"}), "a.zip"),
                       (_tar(tiny_files() | {"/etc/cron.d/x.py": "x = 1\n"}), "b.tar.gz")):
        r = _upload(api, data, name)
        assert r.status_code == 422, r.text
        assert "path traversal" in r.json()["error"]["message"]
    r = _upload(api, _tar(tiny_files(), link="/etc/passwd"), "c.tar.gz")
    assert r.status_code == 422 and "links" in r.json()["error"]["message"]
    r = api.client.post("/api/problems", json={"files": tiny_files() | {"../x.py": "1"}},
                        headers=api.h("alice"))
    assert r.status_code == 422 and "escapes the problem folder" in r.json()["error"]["message"]


def test_not_an_archive_and_sub_folders_are_named(api: Api) -> None:
    r = _upload(api, b"just some bytes", "p.zip")
    assert r.status_code == 422 and "not a zip or tar archive" in r.json()["error"]["message"]
    r = api.client.post("/api/problems", json={"files": tiny_files() | {"lib/util.py": "1"}},
                        headers=api.h("alice"))
    assert r.status_code == 422 and "lib/util.py" in r.json()["error"]["message"]
